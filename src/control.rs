//! The operator's control protocol, spoken over the Unix control socket.
//!
//! A client sends one request line and reads the reply until the server
//! closes. Requests are words, as typed after `twinwall`:
//! `show conn`, `show xlate --json`, `reload`. The reply's first line is
//! `ok` or `error`, the rest is the text (or JSON) to print.

use crate::appliance::Appliance;
use crate::show::ShowWhat;
use crate::time::Instant;

/// A parsed control request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Show {
        what: ShowWhat,
        json: bool,
    },
    /// Re-read the config file; the shell does the reading.
    Reload,
    /// `failover active` / `failover standby`.
    Failover(crate::appliance::ForceRole),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let json = words.contains(&"--json");
        let words: Vec<&str> = words.into_iter().filter(|w| *w != "--json").collect();
        match words.as_slice() {
            ["show", what] => {
                let what = ShowWhat::parse(what)
                    .ok_or_else(|| format!("unknown `show {what}`; try one of: {}", ShowWhat::NAMES.join(", ")))?;
                Ok(Request::Show { what, json })
            }
            ["reload"] => Ok(Request::Reload),
            ["failover", "active"] => Ok(Request::Failover(crate::appliance::ForceRole::Active)),
            ["failover", "standby"] => Ok(Request::Failover(crate::appliance::ForceRole::Standby)),
            _ => Err(format!("unknown request `{line}`; try `show conn` or `reload`")),
        }
    }

    pub fn to_line(&self) -> String {
        match self {
            Request::Show { what, json } => {
                format!("show {}{}", what.name(), if *json { " --json" } else { "" })
            }
            Request::Reload => "reload".into(),
            Request::Failover(crate::appliance::ForceRole::Active) => "failover active".into(),
            Request::Failover(crate::appliance::ForceRole::Standby) => "failover standby".into(),
        }
    }
}

/// Answer a `show` request.
pub fn answer_show(app: &Appliance, what: ShowWhat, json: bool, now: Instant) -> String {
    let report = app.show(what, now);
    if json {
        let mut s = serde_json::to_string_pretty(&report.json()).unwrap_or_default();
        s.push('\n');
        s
    } else {
        report.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(Request::parse("show conn --json").unwrap(), Request::Show { what: ShowWhat::Conn, json: true });
        assert_eq!(Request::parse("show  xlate").unwrap(), Request::Show { what: ShowWhat::Xlate, json: false });
        assert_eq!(Request::parse("reload").unwrap(), Request::Reload);
        assert!(Request::parse("show nothing").unwrap_err().contains("conn"));
        assert!(Request::parse("frobnicate").is_err());
        let r = Request::Show { what: ShowWhat::Arp, json: true };
        assert_eq!(Request::parse(&r.to_line()).unwrap(), r);
    }
}
