"""The fan-out to banks: channels, lanes (cap + breaker), one attempt, and
the retry loop of a bank task. The engine drives it; it knows nothing of
the store."""

from hub.fanout.lanes import BankLane, Fanout
from hub.fanout.retry import Alarm, FinalOutcome, TaskContext, run_bank_task

__all__ = ["Alarm", "BankLane", "Fanout", "FinalOutcome", "TaskContext", "run_bank_task"]
