//! Local wall-clock time and nsq_to_file's strftime subset (spec C.1) for `<DATETIME>`.
//!
//! Local time comes from libc's `localtime_r`, which also gives the zone abbreviation (`%Z`) and
//! offset (`%z`) that Go's `time.Local` provides.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A broken-down local time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    pub utc_offset_secs: i64,
    pub zone: String,
}

impl LocalTime {
    pub fn now() -> LocalTime {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as libc::time_t;
        // SAFETY: `tm` is a plain C struct that localtime_r fills; both pointers are valid.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&secs, &mut tm).is_null() {
                libc::gmtime_r(&secs, &mut tm);
            }
            tm
        };
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            // SAFETY: tm_zone points to a NUL-terminated static string owned by libc.
            unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
                .to_string_lossy()
                .into_owned()
        };
        LocalTime {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            micros: since.subsec_micros(),
            weekday: tm.tm_wday as u32,
            utc_offset_secs: tm.tm_gmtoff,
            zone,
        }
    }

    /// Go's `log.Ldate|log.Ltime|log.Lmicroseconds`: `2006/01/02 15:04:05.000000`.
    pub fn log_stamp(&self) -> String {
        format!("{}.{:06}", self.std_log_stamp(), self.micros)
    }

    /// Go's `log.LstdFlags` (the standard logger's): `2006/01/02 15:04:05`.
    pub fn std_log_stamp(&self) -> String {
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// nsq_to_file's strftime subset: `%B %b %m %A %a %d %H %I %M %S %Y %y %p %Z %z %%`; any other
/// `%x` stays as it is.
///
/// Deviation: nsq_to_file turns the format into a Go layout first, so literal text that happens
/// to be a Go layout token (`2006`, `01`, `Jan`, `15`...) is substituted too. Here literal text
/// stays literal.
pub fn strftime(format: &str, t: &LocalTime) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(code) = chars.next() else {
            out.push('%');
            break;
        };
        let month = MONTHS[(t.month.clamp(1, 12) - 1) as usize];
        let weekday = WEEKDAYS[(t.weekday % 7) as usize];
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        match code {
            'B' => out.push_str(month),
            'b' => out.push_str(&month[..3]),
            'm' => out.push_str(&format!("{:02}", t.month)),
            'A' => out.push_str(weekday),
            'a' => out.push_str(&weekday[..3]),
            'd' => out.push_str(&format!("{:02}", t.day)),
            'H' => out.push_str(&format!("{:02}", t.hour)),
            'I' => out.push_str(&format!("{hour12:02}")),
            'M' => out.push_str(&format!("{:02}", t.minute)),
            'S' => out.push_str(&format!("{:02}", t.second)),
            'Y' => out.push_str(&format!("{:04}", t.year)),
            'y' => out.push_str(&format!("{:02}", t.year.rem_euclid(100))),
            'p' => out.push_str(if t.hour < 12 { "AM" } else { "PM" }),
            'Z' => out.push_str(&t.zone),
            'z' => {
                let sign = if t.utc_offset_secs < 0 { '-' } else { '+' };
                let abs = t.utc_offset_secs.unsigned_abs();
                out.push_str(&format!("{sign}{:02}{:02}", abs / 3600, abs / 60 % 60));
            }
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LocalTime {
        LocalTime {
            year: 2006,
            month: 1,
            day: 2,
            hour: 15,
            minute: 4,
            second: 5,
            micros: 7,
            weekday: 1,
            utc_offset_secs: -7 * 3600,
            zone: "MST".into(),
        }
    }

    #[test]
    fn every_code_of_the_subset() {
        let t = sample();
        assert_eq!(strftime("%Y-%m-%d_%H", &t), "2006-01-02_15");
        assert_eq!(
            strftime("%B %b %A %a %I %M %S %y %p %Z %z %%", &t),
            "January Jan Monday Mon 03 04 05 06 PM MST -0700 %"
        );
        assert_eq!(strftime("%q%", &t), "%q%");
        assert_eq!(t.log_stamp(), "2006/01/02 15:04:05.000007");
    }

    #[test]
    fn midnight_and_noon_in_twelve_hour_form() {
        let mut t = sample();
        t.hour = 0;
        assert_eq!(strftime("%I%p", &t), "12AM");
        t.hour = 12;
        assert_eq!(strftime("%I%p", &t), "12PM");
        t.utc_offset_secs = 5 * 3600 + 30 * 60;
        assert_eq!(strftime("%z", &t), "+0530");
    }

    #[test]
    fn now_is_plausible() {
        let t = LocalTime::now();
        assert!(t.year >= 2024 && (1..=12).contains(&t.month) && t.weekday < 7);
    }
}
