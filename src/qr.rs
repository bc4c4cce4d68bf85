//! What an authenticator app scans: the `otpauth://` URI of a secret and its
//! QR code, drawn in a terminal or written as PNG or SVG.
//!
//! The URI follows Google's Key Uri Format and spells out `algorithm`,
//! `digits` and `period`: apps that are not told assume SHA1/6/30, and a
//! silent mismatch is a user who can never log in.
#![forbid(unsafe_code)]

use crate::config::TotpParams;
use qrcode::{Color, EcLevel, QrCode};
use zeroize::Zeroizing;

/// Terminal width the terminal drawing must fit.
pub const TERMINAL_COLUMNS: usize = 80;
/// The quiet zone the QR specification asks for, in modules, on every side.
pub const QUIET_ZONE: usize = 4;
/// Pixels per module in a PNG: about 400 px for a typical URI.
const PNG_SCALE: usize = 8;

/// How to draw the code in a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// UTF-8 half blocks, two modules per character cell, light modules drawn
    /// as blocks: for the usual light-on-dark terminal.
    Utf8,
    /// The same half blocks with explicit black-on-white colours: scans on
    /// any terminal background.
    Ansi,
}

#[derive(Debug)]
pub enum QrError {
    /// The text is too long for any QR code.
    TooLong,
    /// It encodes, but the drawing would be wider than the terminal.
    TooWide {
        columns: usize,
    },
    Write(String),
}

impl std::fmt::Display for QrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QrError::TooLong => f.write_str("the URI is too long for a QR code"),
            QrError::TooWide { columns } => write!(
                f,
                "the QR code needs {columns} columns, more than {TERMINAL_COLUMNS}: \
                 use --png or --svg, or a shorter issuer"
            ),
            QrError::Write(e) => write!(f, "cannot encode the image: {e}"),
        }
    }
}

impl std::error::Error for QrError {}

/// A QR code: `width` x `width` modules, row by row, true = dark.
pub struct Qr {
    width: usize,
    dark: Zeroizing<Vec<bool>>,
    level: EcLevel,
    version: i16,
}

impl Qr {
    /// The smallest code for `text`: error correction M if the terminal
    /// drawing of that fits [`TERMINAL_COLUMNS`], else L (smaller modules
    /// scan worse from a screen than weaker correction does).
    pub fn encode(text: &[u8]) -> Result<Qr, QrError> {
        let mut fallback = None;
        for level in [EcLevel::M, EcLevel::L] {
            let Ok(code) = QrCode::with_error_correction_level(text, level) else {
                continue;
            };
            let qr = Qr::from_code(&code, level);
            if qr.columns() <= TERMINAL_COLUMNS {
                return Ok(qr);
            }
            fallback.get_or_insert(qr);
        }
        fallback.ok_or(QrError::TooLong)
    }

    fn from_code(code: &QrCode, level: EcLevel) -> Qr {
        let version = match code.version() {
            qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => v,
        };
        Qr {
            width: code.width(),
            dark: Zeroizing::new(code.to_colors().iter().map(|c| *c == Color::Dark).collect()),
            level,
            version,
        }
    }

    /// Modules per side, without the quiet zone.
    pub fn width(&self) -> usize {
        self.width
    }

    /// `"version 7-M"`, for the curious.
    pub fn describe(&self) -> String {
        let level = match self.level {
            EcLevel::L => 'L',
            EcLevel::M => 'M',
            EcLevel::Q => 'Q',
            EcLevel::H => 'H',
        };
        format!("version {}-{level}", self.version)
    }

    /// Character columns the terminal drawing takes.
    pub fn columns(&self) -> usize {
        self.width + 2 * QUIET_ZONE
    }

    /// Whether (x, y) is dark; the quiet zone (outside) is light.
    fn dark_at(&self, x: isize, y: isize) -> bool {
        let w = self.width as isize;
        (0..w).contains(&x) && (0..w).contains(&y) && self.dark[(y * w + x) as usize]
    }

    /// The drawing, one line per two module rows, quiet zone included.
    /// Fails if it would be wider than [`TERMINAL_COLUMNS`].
    pub fn terminal(&self, style: Style) -> Result<Zeroizing<String>, QrError> {
        if self.columns() > TERMINAL_COLUMNS {
            return Err(QrError::TooWide {
                columns: self.columns(),
            });
        }
        let q = QUIET_ZONE as isize;
        let w = self.width as isize;
        let mut out = Zeroizing::new(String::new());
        let mut y = -q;
        while y < w + q {
            if style == Style::Ansi {
                // Black ink on bright white paper.
                out.push_str("\x1b[30;107m");
            }
            for x in -q..w + q {
                let (top, bottom) = (self.dark_at(x, y), self.dark_at(x, y + 1));
                // Utf8 draws light modules (the terminal's foreground is the
                // light colour); Ansi draws dark ones in black.
                let (top, bottom) = match style {
                    Style::Utf8 => (!top, !bottom),
                    Style::Ansi => (top, bottom),
                };
                out.push(match (top, bottom) {
                    (true, true) => '\u{2588}',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (false, false) => ' ',
                });
            }
            if style == Style::Ansi {
                out.push_str("\x1b[0m");
            }
            out.push('\n');
            y += 2;
        }
        Ok(out)
    }

    /// A black-on-white PNG, 8-bit grayscale, quiet zone included.
    pub fn png(&self) -> Result<Zeroizing<Vec<u8>>, QrError> {
        let side = self.columns() * PNG_SCALE;
        let q = QUIET_ZONE as isize;
        let mut pixels = Zeroizing::new(vec![255u8; side * side]);
        for py in 0..side {
            for px in 0..side {
                let x = (px / PNG_SCALE) as isize - q;
                let y = (py / PNG_SCALE) as isize - q;
                if self.dark_at(x, y) {
                    pixels[py * side + px] = 0;
                }
            }
        }
        let mut out = Zeroizing::new(Vec::new());
        let side32 = u32::try_from(side).map_err(|e| QrError::Write(e.to_string()))?;
        let mut encoder = png::Encoder::new(&mut *out, side32, side32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| QrError::Write(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| QrError::Write(e.to_string()))?;
        writer.finish().map_err(|e| QrError::Write(e.to_string()))?;
        Ok(out)
    }

    /// A scalable SVG: one path of unit squares on a white background.
    pub fn svg(&self) -> Zeroizing<String> {
        use std::fmt::Write as _;
        let side = self.columns();
        let mut path = Zeroizing::new(String::new());
        for y in 0..self.width {
            for x in 0..self.width {
                if self.dark[y * self.width + x] {
                    let _ = write!(path, "M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE);
                }
            }
        }
        let px = side * PNG_SCALE;
        Zeroizing::new(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" \
             width=\"{px}\" height=\"{px}\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\">\n\
             <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/>\n\
             <path fill=\"#000000\" d=\"{}\"/>\n</svg>\n",
            path.as_str()
        ))
    }
}

/// `otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=...&digits=...&period=...`
///
/// The label and the issuer are percent-encoded (RFC 3986 unreserved
/// characters only stay as they are); the colon between issuer and account
/// is literal, as Google's format asks.
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    b32: &str,
    params: &TotpParams,
) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        pct(issuer),
        pct(account),
        pct(b32),
        pct(issuer),
        params.algorithm.as_str(),
        params.digits,
        params.period
    ))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn pct(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algorithm;

    #[test]
    fn percent_encoding_table() {
        let cases = [
            ("alice", "alice"),
            ("a.b-c_d~e", "a.b-c_d~e"),
            ("Acme Corp", "Acme%20Corp"),
            ("a:b", "a%3Ab"),
            ("a&b=c?d#e/f", "a%26b%3Dc%3Fd%23e%2Ff"),
            ("100%", "100%25"),
            ("a+b", "a%2Bb"),
            ("alice@example.org", "alice%40example.org"),
            ("Müller", "M%C3%BCller"),
            ("", ""),
        ];
        for (raw, want) in cases {
            assert_eq!(pct(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn uri_spells_out_every_parameter() {
        let p = TotpParams {
            digits: 8,
            period: 60,
            algorithm: Algorithm::SHA256,
            skew: 1,
        };
        let uri = otpauth_uri("Acme Corp", "alice", "GEZDGNBV", &p);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20Corp:alice?secret=GEZDGNBV&issuer=Acme%20Corp\
             &algorithm=SHA256&digits=8&period=60"
        );
    }

    #[test]
    fn terminal_drawing_fits_and_has_the_quiet_zone() {
        let uri = otpauth_uri(
            "build-server-07.example.org",
            "alice.longname@example.org",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            &TotpParams::default(),
        );
        let qr = Qr::encode(uri.as_bytes()).unwrap();
        for style in [Style::Utf8, Style::Ansi] {
            let text = qr.terminal(style).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), qr.columns().div_ceil(2));
            for l in &lines {
                let visible = l.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
                assert_eq!(visible.chars().count(), qr.columns());
                assert!(visible.chars().count() <= TERMINAL_COLUMNS);
            }
        }
        // The first line is all quiet zone: light everywhere.
        let utf8 = qr.terminal(Style::Utf8).unwrap();
        assert!(
            utf8.lines()
                .next()
                .unwrap()
                .chars()
                .all(|c| c == '\u{2588}')
        );
    }

    #[test]
    fn long_text_falls_back_to_level_l_then_refuses_the_terminal() {
        // Version 13 (69 modules + the quiet zone = 77 columns) is the largest
        // that fits: it holds 331 bytes at M, 427 at L.
        let qr = Qr::encode(&[b'a'; 200]).unwrap();
        assert!(qr.describe().ends_with("-M"), "{}", qr.describe());
        let big = Qr::encode(&[b'a'; 400]).unwrap();
        assert!(big.describe().ends_with("-L"), "{}", big.describe());
        assert!(big.columns() <= TERMINAL_COLUMNS);
        let huge = Qr::encode(&[b'a'; 1500]).unwrap();
        assert!(matches!(
            huge.terminal(Style::Utf8),
            Err(QrError::TooWide { .. })
        ));
        // The images have no such limit.
        assert!(huge.png().is_ok());
        assert!(matches!(Qr::encode(&[b'a'; 5000]), Err(QrError::TooLong)));
    }

    #[test]
    fn png_and_svg_are_well_formed() {
        let qr = Qr::encode(b"otpauth://totp/x:y?secret=GEZDGNBV").unwrap();
        let png = qr.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = qr.svg();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(&format!("viewBox=\"0 0 {0} {0}\"", qr.columns())));
    }
}
