//! `--config FILE`: a TOML file of a tool's keys ([`super::keys`]), turned into flags placed
//! before the command line's own, so each tool's one flag parser reads both and nsqd's priority
//! falls out: command-line flag > config file > default.
//!
//! Scalar flags override themselves (`args_override_self`: the last one wins, and the command
//! line comes last). Repeatable flags would append instead, so a key whose flag is also on the
//! command line is dropped from the file's flags: the command line replaces it whole, as
//! go-options does.
//!
//! Stricter than nsqd on purpose: an unknown key, or a value of the wrong type, is an error
//! naming the key, the file and what was expected (nsqd ignores unknown keys, and coerces
//! integers to booleans backwards). Values are checked here, so a bad one is reported as the
//! key in the file, not as the flag it became.
//!
//! `--version` and `--help` skip the file, as nsqd prints its version before reading it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use super::go_values::{parse_go_bool, parse_go_duration_ns, parse_go_f64, parse_go_i64};
use super::keys::{Kind, Schema};

/// Config files are a few kilobytes; anything this big is not one.
const CONFIG_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// What the command line says, read the way Go's `flag` package reads it.
#[derive(Debug, Default)]
struct CommandLine {
    /// Flag names given (without dashes), up to the first non-flag argument.
    flags: Vec<String>,
    /// The last `--config` value.
    config_path: Option<String>,
    /// `--version` (true) or `--help`: the file is not read.
    version_or_help: bool,
    /// Index ranges in argv of the `--config` flags (flag and value), to remove for tools
    /// whose parser does not know `--config`.
    config_arg_ranges: Vec<(usize, usize)>,
}

fn scan_command_line(argv: &[OsString], schema: &Schema) -> CommandLine {
    let mut out = CommandLine::default();
    let mut i = 1;
    while i < argv.len() {
        let bytes = argv[i].as_bytes();
        if bytes == b"--" || bytes.len() < 2 || bytes[0] != b'-' {
            break;
        }
        let body = if bytes[1] == b'-' {
            &bytes[2..]
        } else {
            &bytes[1..]
        };
        if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
            break; // bad syntax: the tool's parser reports it
        }
        let name_len = body.iter().position(|&b| b == b'=').unwrap_or(body.len());
        let name = String::from_utf8_lossy(&body[..name_len]).into_owned();
        let mut value =
            (name_len < body.len()).then(|| String::from_utf8_lossy(&body[name_len + 1..]).into_owned());
        let start = i;
        let takes_value = name == "config"
            || schema
                .key_for_flag(&name)
                .is_some_and(|k| !matches!(k.kind, Kind::Bool | Kind::BoolOrTcpHttps));
        if value.is_none() && takes_value && i + 1 < argv.len() {
            i += 1;
            value = Some(argv[i].to_string_lossy().into_owned());
        }
        match name.as_str() {
            "config" => {
                out.config_path = value;
                out.config_arg_ranges.push((start, i));
            }
            "version" if value.as_deref().is_none_or(|v| parse_go_bool(v) == Ok(true)) => {
                out.version_or_help = true;
            }
            "h" | "help" => out.version_or_help = true,
            _ => {}
        }
        out.flags.push(name);
        i += 1;
    }
    out
}

/// Returns `argv` with the config file's keys as flags in front of the command line's flags
/// (and without `--config` for tools whose parser lacks it). No `--config`: `argv` unchanged.
///
/// The error is one line, worded like nsqd's (`failed to load config file <path> - <why>`).
pub fn args_with_config_file(argv: Vec<OsString>, schema: &Schema) -> Result<Vec<OsString>, String> {
    let cmdline = scan_command_line(&argv, schema);
    let path = match &cmdline.config_path {
        Some(p) if !p.is_empty() && !cmdline.version_or_help => p.clone(),
        _ => return Ok(strip_config_args(argv, &cmdline, schema)),
    };
    let text = read_config_file(&path)?;
    let file_args = flags_from_toml(&text, &path, schema, &cmdline.flags)?;
    let mut argv = strip_config_args(argv, &cmdline, schema).into_iter();
    let mut out = Vec::with_capacity(argv.len() + file_args.len());
    out.extend(argv.next());
    out.extend(file_args.into_iter().map(OsString::from));
    out.extend(argv);
    Ok(out)
}

fn strip_config_args(argv: Vec<OsString>, cmdline: &CommandLine, schema: &Schema) -> Vec<OsString> {
    if schema.parser_has_config_flag {
        return argv;
    }
    argv.into_iter()
        .enumerate()
        .filter(|(i, _)| {
            !cmdline
                .config_arg_ranges
                .iter()
                .any(|&(a, b)| (a..=b).contains(i))
        })
        .map(|(_, a)| a)
        .collect()
}

fn read_config_file(path: &str) -> Result<String, String> {
    let fail = |why: String| format!("failed to load config file {path} - {why}");
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.is_dir() {
        return Err(fail("is a directory".into()));
    }
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        return Err(fail(format!("larger than {CONFIG_FILE_BYTES_MAX} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))
}

/// The file's keys as `--flag=value` arguments (in key order), skipping keys whose flag
/// is in `cmdline_flags`.
fn flags_from_toml(
    text: &str,
    path: &str,
    schema: &Schema,
    cmdline_flags: &[String],
) -> Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let (line, col) = line_col(text, s.start);
                format!("line {line}, column {col}: ")
            })
            .unwrap_or_default();
        let msg = e.message().lines().next().unwrap_or("invalid TOML").trim();
        format!("failed to load config file {path} - {at}{msg}")
    })?;
    let mut args = Vec::new();
    for (name, value) in &table {
        let Some(key) = schema.key(name) else {
            return Err(unknown_key(path, name, schema));
        };
        if cmdline_flags.iter().any(|f| f == key.flag) {
            continue;
        }
        let values = flag_values(key.kind, value).map_err(|expected| {
            format!(
                "config file {path}: {name}: expected {expected}, found {}",
                describe(value)
            )
        })?;
        args.extend(values.into_iter().map(|v| format!("--{}={v}", key.flag)));
    }
    Ok(args)
}

fn unknown_key(path: &str, name: &str, schema: &Schema) -> String {
    let dashed = name.replace('_', "-");
    let hint = match schema.key_for_flag(&dashed) {
        Some(k) => format!(" ({}'s key for --{} is {})", schema.tool, k.flag, k.name),
        None => String::new(),
    };
    format!("config file {path}: unknown key {name}{hint}")
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(f) => format!("the float {f}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the datetime {d}"),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A key's value as the flag values it stands for, or what was expected instead.
fn flag_values(kind: Kind, value: &toml::Value) -> Result<Vec<String>, String> {
    use toml::Value as V;
    let one = |s: String| Ok(vec![s]);
    match kind {
        Kind::Str => match value {
            V::String(s) => one(s.clone()),
            _ => Err("a string".into()),
        },
        Kind::OneOf(choices) => match value {
            V::String(s) if choices.iter().any(|c| c.eq_ignore_ascii_case(s)) => one(s.clone()),
            _ => {
                let quoted: Vec<String> = choices.iter().map(|c| format!("{c:?}")).collect();
                Err(format!("one of {}", quoted.join(", ")))
            }
        },
        Kind::Bool => match value {
            V::Boolean(b) => one(b.to_string()),
            V::String(s) if parse_go_bool(s).is_ok() => one(s.clone()),
            _ => Err("a boolean (true or false)".into()),
        },
        Kind::BoolOrTcpHttps => match value {
            V::Boolean(b) => one(b.to_string()),
            V::String(s) if parse_go_bool(s).is_ok() || s.eq_ignore_ascii_case("tcp-https") => one(s.clone()),
            _ => Err("true, false or \"tcp-https\"".into()),
        },
        Kind::Int | Kind::Unsigned | Kind::Port => {
            let n = match value {
                V::Integer(i) => Some(*i),
                V::String(s) => parse_go_i64(s).ok(),
                _ => None,
            };
            let (ok, expected) = match kind {
                Kind::Unsigned => (n.is_some_and(|n| n >= 0), "a non-negative integer"),
                Kind::Port => (
                    n.is_some_and(|n| (0..=65_535).contains(&n)),
                    "a port number in [0,65535]",
                ),
                _ => (n.is_some(), "an integer"),
            };
            match n {
                Some(n) if ok => one(n.to_string()),
                _ => Err(expected.into()),
            }
        }
        Kind::Duration => match value {
            V::String(s) if parse_go_duration_ns(s).is_ok() => one(s.clone()),
            V::Integer(ms) => one(format!("{ms}ms")),
            _ => Err(
                "a duration (a string such as \"60s\" or \"1m30s\", or an integer of milliseconds)".into(),
            ),
        },
        Kind::StrList | Kind::Repeated => {
            let split = kind == Kind::StrList;
            match value {
                V::String(s) if split => Ok(s.split(',').map(str::to_string).collect()),
                V::String(s) => one(s.clone()),
                V::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| "an array of strings".to_string()),
                _ => Err("an array of strings".into()),
            }
        }
        Kind::FloatList => {
            let expected = || "an array of numbers (or one comma-separated string of them)".to_string();
            match value {
                V::String(s) => s
                    .split(',')
                    .map(|p| {
                        parse_go_f64(p.trim())
                            .map(|f| f.to_string())
                            .map_err(|_| expected())
                    })
                    .collect(),
                V::Array(items) => items
                    .iter()
                    .map(|v| match v {
                        V::Float(f) => Ok(f.to_string()),
                        V::Integer(i) => Ok(i.to_string()),
                        _ => Err(expected()),
                    })
                    .collect(),
                _ => Err(expected()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
