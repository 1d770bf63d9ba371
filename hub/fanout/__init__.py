"""The fan-out to banks: channels, lanes (cap + breaker), one attempt, and
the retry loop of a bank task, all under one `BankCallPolicy`. The engine drives it; it knows nothing of
the store."""

from hub.fanout.lanes import BankLane, Fanout
from hub.fanout.policy import BankCallPolicy
from hub.fanout.retry import Alarm, FinalOutcome, TaskContext, run_bank_task

__all__ = ["Alarm", "BankCallPolicy", "BankLane", "Fanout", "FinalOutcome", "TaskContext", "run_bank_task"]
