//! `twostep send-test USER`: hands a test message, with no code in it, to
//! the user's method (sendmail for an email user, `sms.command` for an SMS
//! user) as a login would, and says what happened. An app user gets the
//! test by email if they have an address (for notices and lost-device
//! codes); otherwise there is nothing to send. Nothing is recorded: nothing
//! changed, and the administrator sees the outcome.
#![forbid(unsafe_code)]

use super::term;
use super::{CliError, CliResult, Ctx};
use crate::delivery;
use crate::delivery::outbox::{self, Destination};
use crate::files::secret::{self, Method, SecretError};
use std::time::SystemTime;

#[derive(clap::Args, Debug)]
#[command(
    about = "Send a test message (no code) to a user's email address or phone number",
    after_help = "\
Examples:
  twostep send-test bob            bob's codes come by email: mail him a test
  twostep send-test carol          by text message, through sms.command

The message goes where the user's sign-in codes go, through the same program
(email.sendmail or sms.command) with the same deadline (codes.timeout). An
app user gets it by email if they have an address (notices and lost-device
codes go there); otherwise there is nothing to send.

Exit status: 0 if the program accepted the message (whether it arrives is up
to the mail system or the SMS gateway), 1 if not, with the reason."
)]
pub struct Args {
    /// The enrolled user
    user: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    super::require_root("send-test")?;
    let user = super::account_or_name(&args.user)?;
    let c = &ctx.config;
    let read = match secret::load(&c.secret_dir, &user, &c.totp) {
        Ok(s) => s,
        Err(SecretError::Missing) => {
            return Err(CliError::Failed(format!(
                "{user} is not enrolled: there is nothing to test"
            )));
        }
        Err(e) => return Err(CliError::Failed(format!("{user}: {e}"))),
    };
    let to = match read.method {
        Method::Totp => match outbox::user_email(c, &user, read.email.as_ref()) {
            Some(address) => {
                println!(
                    "{user} signs in with an authenticator app: no codes are sent. The test \
                     goes to the address for notices and lost-device codes."
                );
                Destination::Email(address)
            }
            None => {
                return Err(CliError::Failed(format!(
                    "{user} signs in with an authenticator app and has no email address \
                     (no `email` in the secret file, no email.address template): there is \
                     nothing to send"
                )));
            }
        },
        method => outbox::destination(c, &user, &read, method)
            .map_err(|why| CliError::Failed(format!("{user}: {why}")))?,
    };
    let origin = outbox::Origin::new(c).map_err(|e| CliError::Usage(e.to_string()))?;
    let sender = origin.sender();
    let (program, result) = match &to {
        Destination::Email(address) => {
            let email = delivery::test_email(&sender, address, user.as_str(), SystemTime::now());
            let program = c.email.sendmail.clone();
            let result = delivery::send_email(c.email.program(), &email, c.codes.timeout);
            (program, result)
        }
        Destination::Sms(number) => {
            // outbox::destination has made sure that SMS is on.
            let program = c.sms.command.clone().unwrap_or_default();
            let text = delivery::test_sms(&sender, user.as_str());
            let result = match c.sms.program() {
                Some(command) => delivery::send_sms(command, number, &text, c.codes.timeout),
                None => Err(delivery::DeliveryError::Message(
                    "sms.command is not set".into(),
                )),
            };
            (program, result)
        }
    };
    let shown = match &to {
        Destination::Email(a) => a.to_string(),
        Destination::Sms(n) => n.to_string(),
    };
    match result {
        Ok(()) => {
            println!(
                "{} accepted a test message for {user} to {shown}.",
                term::escape_path(&program)
            );
            Ok(())
        }
        Err(e) => Err(CliError::Failed(format!(
            "the test message for {user} to {shown} was not handed over: {e}"
        ))),
    }
}
