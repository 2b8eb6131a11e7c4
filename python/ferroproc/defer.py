"""``Deferred``: a result that is not there yet, with Twisted's semantics.

This is the ferroproc counterpart of ``twisted.internet.defer``, covering what
code that runs processes uses: :class:`Deferred` (callbacks, errbacks,
chaining, cancellation, pausing, timeouts, ``await``), :func:`succeed`,
:func:`fail`, :func:`maybeDeferred`, :class:`DeferredList`,
:func:`gatherResults`, :func:`ensureDeferred`, and :func:`inlineCallbacks`
with :func:`returnValue`.

A Deferred starts empty. ``callback(result)`` or ``errback(failure)`` fires it
once; then each callback/errback pair added with ``addCallbacks`` runs in
order, and what one returns is what the next receives. A raised exception or
a returned :class:`~ferroproc.failure.Failure` switches to the errback side;
an errback that returns a normal value switches back. A callback that returns
another Deferred makes the chain wait for it. The chain is processed with a
loop, not recursion, so long chains do not exhaust the stack.

Example::

    from ferroproc import defer

    d = defer.Deferred()
    d.addCallback(lambda out: out.decode())
    d.addErrback(lambda f: f"failed: {f.getErrorMessage()}")
    d.callback(b"hello")          # the callbacks run now
    assert d.result == "hello"

A Deferred can be awaited inside a coroutine given to :func:`ensureDeferred`
(no asyncio needed) or inside an asyncio coroutine (the Deferred is then
bridged to an asyncio future on the running loop).
"""

from ferroproc._deferred import (
    AlreadyCalledError,
    CancelledError,
    Deferred,
    DeferredList,
    FirstError,
    NotACoroutineError,
    TimeoutError,
    ensureDeferred,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from ferroproc._inlinecallbacks import inlineCallbacks, returnValue

__all__ = [
    "AlreadyCalledError",
    "CancelledError",
    "Deferred",
    "DeferredList",
    "FirstError",
    "NotACoroutineError",
    "TimeoutError",
    "ensureDeferred",
    "fail",
    "gatherResults",
    "inlineCallbacks",
    "maybeDeferred",
    "returnValue",
    "succeed",
]
