//! Go `flag` syntax → clap syntax, for every Squall binary that stands in for a Go tool (squalld,
//! squall-to-file, ...). The clap `Command` itself says which flags take a value and which are
//! booleans (one source of truth): a boolean is an argument with `require_equals` set, i.e.
//! `num_args(0..=1)` + `require_equals` + `default_missing_value("true")`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use clap::error::ErrorKind;

/// How a known long flag consumes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    /// `--name value` or `--name=value`.
    Value,
    /// Booleans (and `--tls-required`): only `--name` or `--name=value`.
    OptionalValue,
    /// `--help`.
    NoValue,
}

/// Rewrites Go `flag` syntax into clap syntax: single-dash long flags get two dashes, a
/// value-taking flag is joined to its value with `=` (so a value that starts with `-` stays a
/// value, as in Go), a boolean never takes the next argument, and the first non-flag argument
/// ends flag parsing (a `--` is put before it so clap sees only positionals from there).
pub fn normalize_go_args(cmd: &clap::Command, argv: Vec<OsString>) -> Result<Vec<OsString>, clap::Error> {
    let kinds: HashMap<&str, FlagKind> = cmd
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let kind = if arg.is_require_equals_set() {
                FlagKind::OptionalValue
            } else if arg.get_action().takes_values() {
                FlagKind::Value
            } else {
                FlagKind::NoValue
            };
            Some((long, kind))
        })
        .collect();

    let mut out = Vec::with_capacity(argv.len() + 1);
    let mut rest = argv.into_iter();
    if let Some(program) = rest.next() {
        out.push(program);
    }
    while let Some(arg) = rest.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            out.push(arg);
            out.extend(rest);
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            out.push(OsString::from("--"));
            out.push(arg);
            out.extend(rest);
            break;
        }
        let body = if bytes[1] == b'-' {
            &bytes[2..]
        } else {
            &bytes[1..]
        };
        if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
            let msg = format!("bad flag syntax: {}", arg.to_string_lossy());
            return Err(cmd.clone().error(ErrorKind::UnknownArgument, msg));
        }
        let name_len = body.iter().position(|&b| b == b'=').unwrap_or(body.len());
        let (name, has_value) = (&body[..name_len], name_len < body.len());
        if name == b"h" || name == b"help" {
            out.push(OsString::from("--help"));
            continue;
        }
        let mut flag = b"--".to_vec();
        flag.extend_from_slice(body);
        let kind = std::str::from_utf8(name).ok().and_then(|n| kinds.get(n));
        if kind == Some(&FlagKind::Value) && !has_value {
            if let Some(value) = rest.next() {
                flag.push(b'=');
                flag.extend_from_slice(value.as_bytes());
            }
        }
        out.push(OsString::from_vec(flag));
    }
    Ok(out)
}
