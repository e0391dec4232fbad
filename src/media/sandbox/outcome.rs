//! What the far end of a sandbox call does, by the callee number's last four digits
//! (API.md §12), and what an agent's device does (agents' contract §12).

use std::time::Duration;

/// The far end's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Fails at once with this cause instead of ringing.
    pub fails_with: Option<&'static str>,
    /// Rings this long before answering; `None` = never answers.
    pub rings_for: Option<Duration>,
    /// Keys pressed, each after a delay from the answer.
    pub presses: Vec<(Duration, char)>,
    /// Hangs up this long after answering (unless the platform hangs up first).
    pub hangs_up_after: Option<Duration>,
}

impl Outcome {
    /// The outcome for a dialled number (its last four digits decide).
    pub fn for_number(number: &str) -> Self {
        let secs = Duration::from_secs;
        let suffix = number
            .len()
            .checked_sub(4)
            .and_then(|i| number.get(i..))
            .unwrap_or_default();
        let answered = |rings: u64, presses: Vec<(Duration, char)>, hangup: u64| Outcome {
            fails_with: None,
            rings_for: Some(secs(rings)),
            presses,
            hangs_up_after: Some(secs(hangup)),
        };
        match suffix {
            "9990" => Outcome {
                fails_with: Some("USER_BUSY"),
                rings_for: None,
                presses: vec![],
                hangs_up_after: None,
            },
            "9991" => Outcome {
                fails_with: None,
                rings_for: None,
                presses: vec![],
                hangs_up_after: None,
            },
            "9992" => Outcome {
                fails_with: Some("UNALLOCATED_NUMBER"),
                rings_for: None,
                presses: vec![],
                hangs_up_after: None,
            },
            "9993" => answered(1, vec![(secs(3), '1')], 30),
            "9994" => answered(1, vec![(secs(3), '2'), (secs(6), '1')], 30),
            "9995" => answered(1, vec![], 2),
            "9996" => answered(10, vec![], 30),
            _ => answered(1, vec![], 30),
        }
    }

    /// The outcome for a simulated caller dialling in from `number` (agents' contract
    /// §12): it waits to be answered, then 9993/9994 press their keys, 9995 hangs up 2 s
    /// after the answer and any other number 60 s after it.
    pub fn for_caller(number: &str) -> Self {
        let user = Self::for_number(number);
        let hangs_up = if user.hangs_up_after == Some(Duration::from_secs(2)) {
            2
        } else {
            60
        };
        Outcome {
            fails_with: None,
            rings_for: None,
            presses: user.presses,
            hangs_up_after: Some(Duration::from_secs(hangs_up)),
        }
    }

    /// A far end that cannot be reached: the originate fails at once with `cause`.
    pub fn unreachable(cause: &'static str) -> Self {
        Outcome {
            fails_with: Some(cause),
            rings_for: None,
            presses: vec![],
            hangs_up_after: None,
        }
    }

    /// The outcome for an agent's device (`user/…`): it rings 1 s, answers by itself and
    /// stays up until the platform hangs up, unless its number's suffix says otherwise
    /// (busy, never answers, fails, hangs up 2 s after answering, rings 10 s; 9993 and
    /// 9994 press nothing).
    pub fn for_agent_device(number: &str) -> Self {
        let stays_up = |rings: u64| Outcome {
            fails_with: None,
            rings_for: Some(Duration::from_secs(rings)),
            presses: vec![],
            hangs_up_after: None,
        };
        let user = Self::for_number(number);
        match number
            .get(number.len().saturating_sub(4)..)
            .unwrap_or_default()
        {
            "9990" | "9991" | "9992" | "9995" => user,
            "9996" => stays_up(10),
            _ => stays_up(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(
            Outcome::for_number("13800009990").fails_with,
            Some("USER_BUSY")
        );
        assert_eq!(Outcome::for_number("13800009991").rings_for, None);
        assert_eq!(
            Outcome::for_number("13800009992").fails_with,
            Some("UNALLOCATED_NUMBER")
        );
        assert_eq!(Outcome::for_number("13800009994").presses.len(), 2);
        assert_eq!(
            Outcome::for_number("13800009995").hangs_up_after,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            Outcome::for_number("13800009996").rings_for,
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            Outcome::for_number("12").rings_for,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn callers_wait_then_behave_by_their_own_number() {
        let caller = Outcome::for_caller;
        assert_eq!(
            caller("13800009995").hangs_up_after,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            caller("13800138000").hangs_up_after,
            Some(Duration::from_secs(60))
        );
        assert_eq!(caller("13800009994").presses.len(), 2);
        assert_eq!(
            caller("13800009990").fails_with,
            None,
            "a caller is never busy"
        );
        assert_eq!(caller("13800009990").rings_for, None);
    }

    #[test]
    fn agent_devices_stay_up() {
        let device = Outcome::for_agent_device;
        assert_eq!(device("80000001").hangs_up_after, None);
        assert_eq!(device("80000001").rings_for, Some(Duration::from_secs(1)));
        assert!(device("80009993").presses.is_empty());
        assert!(device("80009994").presses.is_empty());
        assert_eq!(device("80009990").fails_with, Some("USER_BUSY"));
        assert_eq!(device("80009991").rings_for, None);
        assert_eq!(device("80009992").fails_with, Some("UNALLOCATED_NUMBER"));
        assert_eq!(
            device("80009995").hangs_up_after,
            Some(Duration::from_secs(2))
        );
        assert_eq!(device("80009996").rings_for, Some(Duration::from_secs(10)));
        assert_eq!(device("80009996").hangs_up_after, None);
    }
}
