//! The server-side scripts: every read-modify-write of a user's state is one
//! of these, run atomically by the server with the server's clock (`TIME`),
//! so that parallel attempts on any hosts see each other's counts and no
//! host's clock can widen a lock, a code's validity or a throttle's hour.
//!
//! A user's state is one hash, `<prefix>{<user>}` (the braces make it a
//! cluster hash tag), with the fields below; the recovery codes used are a
//! set beside it, `<prefix>{<user>}:rec`, so that a code struck from one
//! host's copy of the secret file is refused on every other.
//!
//! | field | meaning |
//! |---|---|
//! | `f` `tf` `t` `lu` | failures, failures in this tier, the tier (0-based), locked until |
//! | `ls` `lok` `e` | last accepted step's start, last success, epoch |
//! | `rm` | remembered and known sources: `addr=until=seen;...` (`crate::rules::policy::remember`, `note_source`; an earlier version's `addr=until` is read as never seen) |
//! | `sp` `sh` `se` `sa` | the sent code: purpose (1 sign-in, 2 lost device, 3 confirm), hash (hex), expires, sent at |
//! | `sn` | the sends of the last hour: `t,t,t` |
//! | `na` `nq` | the last lock notice mailed, the notices held back since |
//! | `ds` | named authenticators' last accepted steps: `id=step;...` (`crate::files::state::DeviceStep`; `default`'s is `ls`, which hosts of an earlier version share) |
//!
//! The tier arithmetic is `crate::rules::lockout`'s, in Lua; `tests/fleet.rs`
//! drives both through the same tiers.
#![forbid(unsafe_code)]

use super::Script;
use std::sync::OnceLock;

/// The fields a snapshot of the state reads, in this order.
pub const FIELDS: [&str; 16] = [
    "f", "tf", "t", "lu", "ls", "lok", "e", "rm", "sp", "sh", "se", "sa", "sn", "na", "nq", "ds",
];

macro_rules! prelude {
    () => {
        r#"
local function num(v) return tonumber(v) or 0 end
local function now() local t = redis.call('TIME') return tonumber(t[1]) end
local function split(s, sep)
  local out = {}
  if not s or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end
local function snapshot(k, out)
  local s = redis.call('HMGET', k, 'f','tf','t','lu','ls','lok','e','rm','sp','sh','se','sa','sn',
    'na','nq','ds')
  for i = 1, 16 do out[#out + 1] = s[i] end
  return out
end
local function count(k, n, tiers_arg, held)
  local h = redis.call('HMGET', k, 'f', 'tf', 't', 'lu', 'e')
  local f, tf, t, lu, e = num(h[1]), num(h[2]), num(h[3]), num(h[4]), num(h[5])
  if held ~= '' and tonumber(held) == e then return {'open', f, 0, 0, e, 1} end
  if n < lu then return {'locked', lu} end
  local tiers = {}
  for _, spec in ipairs(split(tiers_arg, ',')) do
    local p = split(spec, ':')
    tiers[#tiers + 1] = {tonumber(p[1]), tonumber(p[2])}
  end
  f = f + 1
  tf = tf + 1
  local idx = math.min(t, #tiers - 1)
  local tier = tiers[idx + 1]
  local new_tier, new_until = 0, 0
  if tf >= tier[1] then
    lu = n + tier[2]
    tf = 0
    t = math.min(idx + 1, #tiers - 1)
    new_tier = idx + 1
    new_until = lu
  end
  redis.call('HSET', k, 'f', f, 'tf', tf, 't', t, 'lu', lu)
  return {'open', f, new_tier, new_until, e, 0}
end
local function sources(k)
  local out = {}
  for _, item in ipairs(split(redis.call('HGET', k, 'rm') or '', ';')) do
    local p = split(item, '=')
    if p[2] then out[#out + 1] = {p[1], num(p[2]), num(p[3])} end
  end
  return out
end
local function lapses(r, w) return math.max(r[2], r[3] + w) end
local function put_sources(k, rm, new, n, w, keep, keep_seen)
  local out = {}
  for _, r in ipairs(rm) do
    if r[1] ~= new[1] and (lapses(r, w) > n or (keep_seen and r[3] > 0)) then out[#out + 1] = r end
  end
  out[#out + 1] = new
  if #out > keep then
    table.sort(out, function(a, b) return lapses(a, w) > lapses(b, w) end)
    while #out > keep do table.remove(out) end
  end
  local parts = {}
  for _, r in ipairs(out) do
    parts[#parts + 1] = r[1] .. '=' .. string.format('%d', r[2]) .. '=' .. string.format('%d', r[3])
  end
  redis.call('HSET', k, 'rm', table.concat(parts, ';'))
end
local function steps(k)
  local out = {}
  for _, item in ipairs(split(redis.call('HGET', k, 'ds') or '', ';')) do
    local p = split(item, '=')
    if p[2] then out[#out + 1] = {p[1], num(p[2])} end
  end
  return out
end
local function put_steps(k, list)
  local parts = {}
  for _, d in ipairs(list) do parts[#parts + 1] = d[1] .. '=' .. string.format('%d', d[2]) end
  redis.call('HSET', k, 'ds', table.concat(parts, ';'))
end
local function step_of(k, id)
  if id == '' then return num(redis.call('HGET', k, 'ls')) end
  for _, d in ipairs(steps(k)) do if d[1] == id then return d[2] end end
  return 0
end
local function accept_step(k, id, t, keep)
  if id == '' then
    redis.call('HSET', k, 'ls', math.max(num(redis.call('HGET', k, 'ls')), t))
    return
  end
  local list = steps(k)
  for _, d in ipairs(list) do
    if d[1] == id then d[2] = math.max(d[2], t) put_steps(k, list) return end
  end
  if #list >= keep then
    local oldest = 1
    for i, d in ipairs(list) do if d[2] < list[oldest][2] then oldest = i end end
    table.remove(list, oldest)
  end
  list[#list + 1] = {id, t}
  put_steps(k, list)
end
local function reset(k, n)
  local e = (num(redis.call('HGET', k, 'e')) + 1) % 4294967296
  redis.call('HSET', k, 'f', 0, 'tf', 0, 't', 0, 'lu', 0, 'e', e)
  return e
end
"#
    };
}

/// Counts an attempt, or finds it counted by the caller's reservation.
/// KEYS: the user's hash. ARGV: tiers `failures:lock,...`, the held epoch
/// or ''. Returns `{'locked', until}` or `{'open', failures, new lock's
/// tier (1-based, 0: none), its until, epoch, reserved (1/0), snapshot...}`.
const BEGIN: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
local c = count(k, now(), ARGV[1], ARGV[2])
if c[1] == 'locked' then return c end
return snapshot(k, c)
"#
);

/// A success: counts the attempt first (unless counted already), then
/// checks what the success depends on, then resets and applies it.
/// KEYS: the hash, the used-recovery set. ARGV: step time or '', spend
/// purpose or '', spend hash, recovery digest or '', remember address or
/// '', remember seconds, new secret ('1'/'0'), the most sources kept,
/// tiers (or '': counted already), the held epoch or '', the
/// authenticator's id (hex; '': `default`), the most named steps kept.
/// Returns
/// `{'done'}`, `{'locked', until}`, or `{'replay'|'gone'|'expired'|'used',
/// failures, new lock's tier, its until, epoch, reserved}`. A sent code's
/// expiry is judged here, by the server's clock that set it: a host whose
/// clock lags must not stretch it.
const SUCCEED: &str = concat!(
    prelude!(),
    r#"
local k, rk = KEYS[1], KEYS[2]
local n = now()
local c = {'open', 0, 0, 0, 0, 1}
if ARGV[9] ~= '' then
  c = count(k, n, ARGV[9], ARGV[10])
  if c[1] == 'locked' then return c end
end
local function refused(why) return {why, c[2], c[3], c[4], c[5], c[6]} end
local ls = step_of(k, ARGV[11])
local newsecret = ARGV[7] == '1'
if ARGV[1] ~= '' and not newsecret and tonumber(ARGV[1]) <= ls then return refused('replay') end
if ARGV[2] ~= '' then
  local cur = redis.call('HMGET', k, 'sp', 'sh', 'se')
  if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return refused('gone') end
  if n >= num(cur[3]) then return refused('expired') end
end
if ARGV[4] ~= '' then
  if redis.call('SADD', rk, ARGV[4]) == 0 then return refused('used') end
end
reset(k, n)
redis.call('HSET', k, 'lok', n)
-- A new secret replaces every authenticator: their steps go with them.
if newsecret then redis.call('HDEL', k, 'ds') end
if ARGV[1] ~= '' then accept_step(k, ARGV[11], tonumber(ARGV[1]), tonumber(ARGV[12])) end
if ARGV[2] ~= '' then redis.call('HDEL', k, 'sp', 'sh', 'se', 'sa') end
local rm = {}
if newsecret then redis.call('HSET', k, 'rm', '') else rm = sources(k) end
if ARGV[5] ~= '' then
  local w, seen = tonumber(ARGV[6]), 0
  for _, r in ipairs(rm) do if r[1] == ARGV[5] then seen = r[3] end end
  put_sources(k, rm, {ARGV[5], n + w, seen}, n, w, tonumber(ARGV[8]), true)
end
return {'done'}
"#
);

/// A successful login's source noted (the Lua of `policy::note_source`).
/// ARGV: the address, the window in seconds, the most sources kept, the
/// slack (`policy::note_slack`). Returns 'known', 'new' or 'first'.
const NOTE_SOURCE: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
local n = now()
local w = tonumber(ARGV[2])
local rm = sources(k)
local verdict, untl, seen = 'first', 0, 0
for _, r in ipairs(rm) do
  if r[3] > 0 then verdict = 'new' end
end
for _, r in ipairs(rm) do
  if r[1] == ARGV[1] then
    untl, seen = r[2], r[3]
    if r[3] > 0 and r[3] + w > n then verdict = 'known' end
  end
end
if verdict == 'known' and seen + tonumber(ARGV[4]) > n then return verdict end
put_sources(k, rm, {ARGV[1], untl, n}, n, w, tonumber(ARGV[3]), false)
return verdict
"#
);

/// A policy skip gives the reservation back. ARGV: the held epoch.
const GIVE_BACK: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
if num(redis.call('HGET', k, 'e')) == tonumber(ARGV[1]) then reset(k, now()) end
return 'ok'
"#
);

/// Decides a send and records it. ARGV: purpose, hash, valid seconds,
/// resend_after seconds, max per hour, held epoch or ''. Returns
/// `{'locked', until}`, `{'use', sent_at, expires}`, `{'throttled', until}`
/// or `{'send', now}`.
const ISSUE: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
local n = now()
local h = redis.call('HMGET', k, 'lu', 'e', 'sp', 'se', 'sa', 'sn')
local lu, e = num(h[1]), num(h[2])
if n < lu and not (ARGV[6] ~= '' and tonumber(ARGV[6]) == e) then return {'locked', lu} end
if h[3] == ARGV[1] and n < num(h[4]) and n - num(h[5]) < tonumber(ARGV[4]) then
  return {'use', num(h[5]), num(h[4])}
end
local recent = {}
for _, t in ipairs(split(h[6] or '', ',')) do
  local v = tonumber(t)
  if v and v <= n and n - v < 3600 then recent[#recent + 1] = v end
end
table.sort(recent)
local max = tonumber(ARGV[5])
if #recent >= max then return {'throttled', recent[#recent - max + 1] + 3600} end
recent[#recent + 1] = n
local sn = {}
for _, v in ipairs(recent) do sn[#sn + 1] = string.format('%d', v) end
redis.call('HSET', k, 'sp', ARGV[1], 'sh', ARGV[2], 'se', n + tonumber(ARGV[3]), 'sa', n,
  'sn', table.concat(sn, ','))
return {'send', n}
"#
);

/// Counts a send made outside a login, if the limits allow (the Lua of
/// `codes::allowance`). KEYS: a user's hash or a destination's. ARGV: max
/// per hour, the least gap in seconds (0: none). Returns `{'send'}`
/// (counted), `{'soon', until}` or `{'throttled', until}`.
const COUNT_SEND: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
local n = now()
local max, gap = tonumber(ARGV[1]), tonumber(ARGV[2])
local recent = {}
for _, t in ipairs(split(redis.call('HGET', k, 'sn') or '', ',')) do
  local v = tonumber(t)
  if v and v <= n and n - v < 3600 then recent[#recent + 1] = v end
end
table.sort(recent)
if #recent > 0 and n - recent[#recent] < gap then return {'soon', recent[#recent] + gap} end
if #recent >= max then
  local oldest = recent[#recent - max + 1]
  return {'throttled', oldest and (oldest + 3600) or n}
end
recent[#recent + 1] = n
local sn = {}
for _, v in ipairs(recent) do sn[#sn + 1] = string.format('%d', v) end
redis.call('HSET', k, 'sn', table.concat(sn, ','))
return {'send'}
"#
);

/// A lock notice is due (the Lua of `codes::lock_notice`). ARGV: the least
/// interval in seconds. Returns `{'mail', held back since the last}` or
/// `{'hold'}`.
const LOCK_NOTICE: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
local n = now()
local h = redis.call('HMGET', k, 'na', 'nq')
local last, held = num(h[1]), num(h[2])
if last == 0 or last > n or n - last >= tonumber(ARGV[1]) then
  redis.call('HSET', k, 'na', n, 'nq', 0)
  return {'mail', held}
end
redis.call('HSET', k, 'nq', held + 1)
return {'hold'}
"#
);

/// Forgets the sent code if it is still ARGV[1] (its hash).
const WITHDRAW: &str = r#"
if redis.call('HGET', KEYS[1], 'sh') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'sp', 'sh', 'se', 'sa')
end
return 'ok'
"#;

/// Spends the sent code if it is still (ARGV[1] purpose, ARGV[2] hash) and
/// unexpired by the server's clock. Returns 1 if it was, 0 if not.
const SPEND: &str = r#"
local c = redis.call('HMGET', KEYS[1], 'sp', 'sh', 'se')
local t = redis.call('TIME')
if c[1] == ARGV[1] and c[2] == ARGV[2] and tonumber(t[1]) < (tonumber(c[3]) or 0) then
  redis.call('HDEL', KEYS[1], 'sp', 'sh', 'se', 'sa')
  return 1
end
return 0
"#;

/// A code that confirmed a new authenticator outside a login: its step
/// marked used. ARGV: the step's start, the authenticator's id (hex; '':
/// `default`), the most named steps kept, new secret ('1': the remembered
/// sources and the named steps forgotten first).
const MARK_USED: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
if ARGV[4] == '1' then redis.call('HDEL', k, 'rm', 'ds') end
accept_step(k, ARGV[2], tonumber(ARGV[1]), tonumber(ARGV[3]))
return 1
"#
);

/// `twostep unlock`: reset, and last steps later than ARGV[1] cleared,
/// `default`'s and named authenticators'. Returns the latest step cleared,
/// or -1.
const UNLOCK: &str = concat!(
    prelude!(),
    r#"
local k = KEYS[1]
reset(k, now())
local beyond, cleared = tonumber(ARGV[1]), -1
local ls = num(redis.call('HGET', k, 'ls'))
if ls > beyond then
  redis.call('HSET', k, 'ls', 0)
  cleared = ls
end
local kept, list = {}, steps(k)
for _, d in ipairs(list) do
  if d[2] > beyond then cleared = math.max(cleared, d[2]) else kept[#kept + 1] = d end
end
if #kept < #list then put_steps(k, kept) end
return cleared
"#
);

/// The scripts, with their SHA-1s computed once per process.
pub struct Scripts {
    pub begin: Script,
    pub succeed: Script,
    pub give_back: Script,
    pub issue: Script,
    pub withdraw: Script,
    pub count_send: Script,
    pub lock_notice: Script,
    pub spend: Script,
    pub unlock: Script,
    pub note_source: Script,
    pub mark_used: Script,
}

pub fn all() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        begin: Script::new(BEGIN),
        succeed: Script::new(SUCCEED),
        give_back: Script::new(GIVE_BACK),
        issue: Script::new(ISSUE),
        withdraw: Script::new(WITHDRAW),
        count_send: Script::new(COUNT_SEND),
        lock_notice: Script::new(LOCK_NOTICE),
        spend: Script::new(SPEND),
        unlock: Script::new(UNLOCK),
        note_source: Script::new(NOTE_SOURCE),
        mark_used: Script::new(MARK_USED),
    })
}
