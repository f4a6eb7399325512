"""Trio in guest mode on Textual's asyncio loop: one run per app, for the app's lifetime.

    host = TrioHost(on_error=app.show_error)
    host.start()                     # in on_mount (needs the running asyncio loop)
    host.start_soon(session.run)     # from Textual code: a task in Trio's root nursery
    host.call_soon(client.ptt, True) # from Textual code: a sync call inside Trio
    await host.stop()                # in on_unmount: cancel everything, wait for the end

Trio's tasks run on Textual's thread (guest ticks are asyncio callbacks), so a Trio task
may ``post_message`` to the app directly. The other way round goes through the run's
``TrioToken`` (``run_sync_soon``), which works from anywhere and puts the call inside
Trio's context. A task that raises does not take the run down: the error is handed to
``on_error`` (the app shows it) and the other tasks go on; so is an error that ends the
run itself. Nothing is swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

log = logging.getLogger("echomesh.tui")

ErrorHandler = Callable[[BaseException], None]


class TrioHost:
    """Owns the guest run: its root cancel scope, its root nursery and its end."""

    def __init__(self, on_error: ErrorHandler) -> None:
        self._on_error = on_error
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._pending: list[tuple[Callable[..., Awaitable[object]], tuple[Any, ...]]] = []
        self._done: asyncio.Event | None = None
        self.outcome: outcome.Outcome[None] | None = None
        """How the run ended (None while it runs or before it started)."""

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.is_set()

    def start(self) -> None:
        """Start the guest run on the running asyncio loop (call once, e.g. in on_mount)."""
        if self._done is not None:
            raise RuntimeError("TrioHost.start() called twice")
        loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            # Textual's asyncio loop may own the signal wakeup fd; Trio must not touch it.
            host_uses_signal_set_wakeup_fd=False,
            done_callback=self._finished,
            strict_exception_groups=True,
        )

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                pending, self._pending = self._pending, []
                for fn, args in pending:
                    nursery.start_soon(self._guard, fn, args)
                await trio.sleep_forever()
        self._nursery = None

    def _finished(self, result: outcome.Outcome[None]) -> None:
        self.outcome = result
        assert self._done is not None
        self._done.set()
        if isinstance(result, outcome.Error):
            self._report(result.error)

    def _report(self, exc: BaseException) -> None:
        log.error("error in Trio: %s", "".join(traceback.format_exception(exc)))
        try:
            self._on_error(exc)
        except Exception:  # the handler itself failed: at least it is in the log
            log.exception("the error handler failed")

    async def _guard(self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception as exc:  # shown, not swallowed; the run and the other tasks go on
            self._report(exc)

    # ------------------------------------------------------------------ from Textual
    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task of the root nursery (errors go to ``on_error``)."""
        if self._token is None:
            if self._done is not None and self._done.is_set():
                return  # the run is over (the app is closing)
            self._pending.append((fn, args))
            return
        self.call_soon(self._spawn, fn, args)

    def _spawn(self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._guard, fn, args)

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` inside Trio soon; errors go to ``on_error`` (an exception in a
        ``run_sync_soon`` callback would otherwise end the whole run)."""
        if self._token is None:
            if self._done is None or not self._done.is_set():
                self.start_soon(_as_async(fn), *args)
            return

        def call() -> None:
            try:
                fn(*args)
            except Exception as exc:
                self._report(exc)

        try:
            self._token.run_sync_soon(call)
        except trio.RunFinishedError:
            pass  # closing: nothing left to do it

    async def stop(self) -> None:
        """Cancel every Trio task and wait until the run has ended (idempotent)."""
        if self._done is None:
            return
        if not self._done.is_set():
            if self._token is None:
                self._pending.clear()
                # _main has not run yet: it will see the cancelled scope at once
            self.call_soon(self._cancel)
            await self._done.wait()

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()


def describe(exc: BaseException) -> str:
    """One line per real error: exception groups (from nurseries) are flattened."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _as_async(fn: Callable[..., object]) -> Callable[..., Awaitable[None]]:
    async def call(*args: Any) -> None:
        fn(*args)

    return call
