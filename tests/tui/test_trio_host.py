"""Trio in guest mode on Textual's loop: it lives exactly as long as the app, however the
app ends, and errors in its tasks are shown, not swallowed."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path

import outcome
import pytest
import trio
import trio.lowlevel

from tui_client.app import EchoMeshApp, Launch
from tui_client.trio_host import TrioHost


def app_at_connect_screen(tmp_path: Path) -> EchoMeshApp:
    return EchoMeshApp(Launch(servers_file=tmp_path / "servers.toml"))


class Probe:
    """A Trio task that records that it ran, in Trio, and that it was cancelled."""

    def __init__(self) -> None:
        self.started = False
        self.in_trio = False
        self.cancelled = False

    async def run(self) -> None:
        self.started = True
        self.in_trio = trio.lowlevel.current_task() is not None
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled = True
            raise


def ended_cleanly(app: EchoMeshApp) -> bool:
    return not app.host.running and isinstance(app.host.outcome, outcome.Value)


def run(coro: object) -> None:
    """Run the test body on a fresh asyncio loop and check that no guest run was left
    behind (Trio warns "Trio guest run got abandoned" when one is collected unfinished)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(coro)  # type: ignore[arg-type]
        gc.collect()
    abandoned = [w for w in caught if "abandoned" in str(w.message)]
    assert not abandoned, abandoned


def test_teardown_of_run_test_ends_the_run(tmp_path: Path) -> None:
    app = app_at_connect_screen(tmp_path)
    probe = Probe()

    async def body() -> None:
        async with app.run_test() as pilot:
            app.host.start_soon(probe.run)
            while not probe.started:
                await pilot.pause(0.01)
            assert app.host.running

    run(body())
    assert probe.in_trio and probe.cancelled
    assert ended_cleanly(app)


def test_app_exit_ends_the_run(tmp_path: Path) -> None:
    app = app_at_connect_screen(tmp_path)
    probe = Probe()

    async def body() -> None:
        async with app.run_test() as pilot:
            app.host.start_soon(probe.run)
            await pilot.pause(0.05)
            app.exit()
            await pilot.pause(0.05)
            assert not app.is_running

    run(body())
    assert probe.cancelled and ended_cleanly(app)


def test_quit_key_ends_the_run(tmp_path: Path) -> None:
    app = app_at_connect_screen(tmp_path)
    probe = Probe()

    async def body() -> None:
        async with app.run_test() as pilot:
            app.host.start_soon(probe.run)
            await pilot.pause(0.05)
            await pilot.press("ctrl+q")
            await pilot.pause(0.05)
            assert not app.is_running

    run(body())
    assert probe.cancelled and ended_cleanly(app)


def test_error_in_a_task_is_shown_and_the_run_goes_on(tmp_path: Path) -> None:
    app = app_at_connect_screen(tmp_path)
    probe = Probe()

    async def fails() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("boom in a Trio task")

    def fails_at_once() -> None:
        raise KeyError("boom in call_soon")

    async def body() -> None:
        async with app.run_test() as pilot:
            app.host.start_soon(fails)
            app.host.call_soon(fails_at_once)
            while len(app.errors) < 2:
                await pilot.pause(0.01)
            shown = [n.message for n in app._notifications]
            assert any("boom in a Trio task" in m for m in shown), shown
            assert any("boom in call_soon" in m for m in shown), shown
            assert app.host.running  # the other tasks are unharmed
            app.host.start_soon(probe.run)
            while not probe.started:
                await pilot.pause(0.01)

    run(body())
    assert probe.cancelled and ended_cleanly(app)


class Fatal(BaseException):
    """Not an Exception: goes through the task guard and ends the run."""


def test_an_error_that_ends_the_run_exits_the_app_with_it(tmp_path: Path) -> None:
    app = app_at_connect_screen(tmp_path)

    async def fatal() -> None:
        raise Fatal("the run cannot go on")

    async def body() -> None:
        async with app.run_test() as pilot:
            app.host.start_soon(fatal)
            for _ in range(200):
                if not app.is_running:
                    break
                await pilot.pause(0.01)

    run(body())
    assert app.return_code == 1
    assert isinstance(app.host.outcome, outcome.Error)
    shown = app.model.all_text()
    assert any("Fatal: the run cannot go on" in text for text in shown), shown


def test_apps_one_after_another_in_one_thread(tmp_path: Path) -> None:
    """Each app's run ends before the next starts (one guest run per thread at a time)."""
    for _ in range(3):
        app = app_at_connect_screen(tmp_path)

        async def body(app: EchoMeshApp = app) -> None:
            async with app.run_test() as pilot:
                await pilot.pause(0.02)
                assert app.host.running

        run(body())
        assert ended_cleanly(app)


def test_host_without_textual_starts_tasks_queued_before_trio_runs() -> None:
    seen: list[str] = []
    errors: list[BaseException] = []

    async def task(name: str) -> None:
        seen.append(name)

    async def body() -> None:
        host = TrioHost(errors.append)
        host.start()
        host.start_soon(task, "queued before the first tick")
        host.call_soon(seen.append, "called before the first tick")
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        await host.stop()
        await host.stop()  # idempotent
        host.start_soon(task, "after the end")  # ignored, not an error
        with pytest.raises(RuntimeError):
            host.start()

    run(body())
    assert sorted(seen) == ["called before the first tick", "queued before the first tick"]
    assert errors == []
