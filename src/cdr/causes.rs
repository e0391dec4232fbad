//! What a leg's ending means to the customer: the `result`/`reason` of §5 and the
//! `callCause` of §6.1, from the media server's hangup cause (ESL.md §5).

/// The hangup cause the platform records when a leg's media server (or the channel on
/// it) was lost: the call counts as failed, answered or not.
pub const MEDIA_LOST: &str = "MEDIA_LOST";

/// How a leg ended, as far as the contract cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    /// It was answered; it ended normally.
    Completed,
    /// It was answered and ended by the maxDuration timer (`sched_hangup`).
    MaxDuration,
    /// The far end never answered and the answer timeout (`originate_timeout`) ran out.
    AnswerTimeout,
    /// The far end reported that nobody answered (480, 408).
    NoAnswer,
    /// Abandoned before answer: cancelCall, or the caller hung up while it rang.
    Canceled,
    /// Busy, rejected, unallocated, network trouble, or the media server was lost.
    Failed,
}

impl LegEnd {
    /// Classifies a leg from whether it was answered and the media server's cause.
    /// `canceled` is the platform's own knowledge that it abandoned the leg.
    pub fn classify(answered: bool, hangup_cause: &str, canceled: bool) -> Self {
        match (answered, hangup_cause) {
            (_, MEDIA_LOST) => Self::Failed,
            (true, "ALLOTTED_TIMEOUT") => Self::MaxDuration,
            (true, _) => Self::Completed,
            (false, _) if canceled => Self::Canceled,
            (false, "NO_ANSWER") => Self::AnswerTimeout,
            (false, "NO_USER_RESPONSE" | "RECOVERY_ON_TIMER_EXPIRE" | "PROGRESS_TIMEOUT") => {
                Self::NoAnswer
            }
            (false, "ORIGINATOR_CANCEL") => Self::Canceled,
            (false, _) => Self::Failed,
        }
    }

    /// How a leg ended, from the `callCause` reported for it (`answered`: whether it was).
    pub fn from_call_cause(cause: &str, answered: bool) -> Option<Self> {
        Some(match cause {
            "completed" => Self::Completed,
            "time-out" if answered => Self::MaxDuration,
            "time-out" => Self::AnswerTimeout,
            "no-answer" => Self::NoAnswer,
            "canceled" => Self::Canceled,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether the leg was never answered because nobody picked up (as opposed to a failure).
    pub fn not_answered(self) -> bool {
        matches!(self, Self::AnswerTimeout | Self::NoAnswer)
    }
}

/// `callCause` of a completed leg (§6.1).
pub fn call_cause(end: LegEnd) -> &'static str {
    match end {
        LegEnd::Completed => "completed",
        LegEnd::MaxDuration | LegEnd::AnswerTimeout => "time-out",
        LegEnd::NoAnswer => "no-answer",
        LegEnd::Canceled => "canceled",
        LegEnd::Failed => "failed",
    }
}

/// `result` and `reason` of a notice or captcha (§5): `("0","")` answered, `("1","1")`
/// not answered, `("1","2")` failed.
pub fn notice_outcome(end: LegEnd) -> (&'static str, &'static str) {
    match end {
        LegEnd::Completed | LegEnd::MaxDuration => ("0", ""),
        e if e.not_answered() => ("1", "1"),
        _ => ("1", "2"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |answered, cause, canceled| call_cause(LegEnd::classify(answered, cause, canceled));
        assert_eq!(c(true, "NORMAL_CLEARING", false), "completed");
        assert_eq!(c(true, "ALLOTTED_TIMEOUT", false), "time-out");
        assert_eq!(c(false, "NO_ANSWER", false), "time-out");
        assert_eq!(c(false, "NO_USER_RESPONSE", false), "no-answer");
        assert_eq!(c(false, "USER_BUSY", false), "failed");
        assert_eq!(c(false, "UNALLOCATED_NUMBER", false), "failed");
        assert_eq!(c(false, "NORMAL_CLEARING", true), "canceled");
        assert_eq!(c(false, "ORIGINATOR_CANCEL", false), "canceled");
        assert_eq!(c(true, "NORMAL_CLEARING", true), "completed");
        assert_eq!(c(true, MEDIA_LOST, false), "failed");
        for end in [
            LegEnd::Completed,
            LegEnd::AnswerTimeout,
            LegEnd::NoAnswer,
            LegEnd::Canceled,
            LegEnd::Failed,
        ] {
            let answered = end == LegEnd::Completed;
            assert_eq!(
                LegEnd::from_call_cause(call_cause(end), answered),
                Some(end)
            );
        }
        assert_eq!(
            LegEnd::from_call_cause("time-out", true),
            Some(LegEnd::MaxDuration)
        );
    }

    #[test]
    fn notice_results() {
        let r = |answered, cause| notice_outcome(LegEnd::classify(answered, cause, false));
        assert_eq!(r(true, "NORMAL_CLEARING"), ("0", ""));
        assert_eq!(r(false, "NO_ANSWER"), ("1", "1"));
        assert_eq!(r(false, "RECOVERY_ON_TIMER_EXPIRE"), ("1", "1"));
        assert_eq!(r(false, "USER_BUSY"), ("1", "2"));
        assert_eq!(r(false, "UNALLOCATED_NUMBER"), ("1", "2"));
    }
}
