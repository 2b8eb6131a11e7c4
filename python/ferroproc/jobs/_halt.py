"""When a run stops early: :class:`HaltPolicy`, GNU parallel's ``--halt``.

No postponed annotations here (as in :mod:`ferroproc.jobs._job`).
"""

import math
import re
from typing import Literal, NamedTuple, Union

__all__ = ["HaltPolicy"]

_FORM = re.compile(r"(now|soon),(fail|success|done)=([0-9]+(?:\.[0-9]*)?)(%?)")
#: GNU parallel's older forms.
_LEGACY = {"1": "soon,fail=1", "2": "now,fail=1", "-1": "soon,success=1", "-2": "now,success=1"}


class HaltPolicy(NamedTuple):
    """Stop a run once enough jobs have failed, succeeded or ended, as GNU
    parallel's ``--halt when,why`` does.

    ``when``: ``"now"`` stops every running job (SIGTERM to its group,
    SIGKILL after ``killGrace``) and starts none; ``"soon"`` starts no more
    jobs and lets the running ones finish. ``on`` counts ``"fail"``ed,
    ``"success"``ful or ``"done"`` jobs (retried jobs count once, after
    their last attempt); the run halts when the count reaches ``number``
    jobs, or ``percent`` per cent of the jobs to run (known from ``len()`` of the
    input when it has one, otherwise once the input is exhausted).

    Example::

        HaltPolicy.parse("now,fail=1")       # stop everything at the first failure
        HaltPolicy.parse("soon,fail=10%")    # finish running jobs once 10% failed
    """

    #: ``"now"`` or ``"soon"``.
    when: Literal["now", "soon"]
    #: ``"fail"``, ``"success"`` or ``"done"``.
    on: Literal["fail", "success", "done"]
    #: Halt at this many jobs (None with ``percent``).
    number: int | None = None
    #: Halt at this percentage of the jobs (None with ``number``).
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> Union["HaltPolicy", None]:
        """The policy ``text`` describes, in GNU parallel's forms:
        ``when,why=X`` or ``when,why=Y%`` (``when``: now, soon; ``why``:
        fail, success, done), and the older ``1``, ``2``, ``-1``, ``-2``,
        ``Y%`` (soon,fail=Y%); ``never`` or ``0`` is no policy (None).

        Raises ``ValueError`` naming what is wrong."""
        if not isinstance(text, str):
            raise TypeError(f"halt must be a str (such as 'now,fail=1'), not {type(text).__name__}")
        spec = text.strip().lower()
        if spec in ("never", "0"):
            return None
        spec = _LEGACY.get(spec, spec)
        if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?%", spec):
            spec = "soon,fail=" + spec
        m = _FORM.fullmatch(spec)
        if m is None:
            raise ValueError(
                f"halt: {text!r} is not a halt policy: use now|soon,fail|success|done=X or =Y% (e.g. 'now,fail=1')"
            )
        when, on, number, pct = m.groups()
        if pct:
            percent = float(number)
            if not 0 < percent <= 100:
                raise ValueError(f"halt: {text!r}: the percentage must be above 0 and at most 100")
            return cls(when, on, None, percent)  # type: ignore[arg-type]
        if "." in number or int(number) < 1:
            raise ValueError(f"halt: {text!r}: the count must be a whole number of jobs, at least 1")
        return cls(when, on, int(number), None)  # type: ignore[arg-type]

    def _check(self) -> "HaltPolicy":
        """This policy, checked (one built by hand rather than parsed)."""
        if self.when not in ("now", "soon"):
            raise ValueError(f"halt: when must be 'now' or 'soon', not {self.when!r}")
        if self.on not in ("fail", "success", "done"):
            raise ValueError(f"halt: on must be 'fail', 'success' or 'done', not {self.on!r}")
        if (self.number is None) == (self.percent is None):
            raise ValueError("halt: give exactly one of number and percent")
        if self.number is not None and (
            not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 1
        ):
            raise ValueError(f"halt: number must be an int of at least 1, not {self.number!r}")
        if self.percent is not None and (
            isinstance(self.percent, bool)
            or not isinstance(self.percent, (int, float))
            or not math.isfinite(self.percent)
            or not 0 < self.percent <= 100
        ):
            raise ValueError(f"halt: percent must be above 0 and at most 100, not {self.percent!r}")
        return self

    def __str__(self) -> str:
        amount = f"{self.number}" if self.number is not None else f"{self.percent:g}%"
        return f"{self.when},{self.on}={amount}"
