"""Live preset swap: another model takes over mid-jam, with no gap and no stuck note.

1. The new preset loads in a fresh decode worker while the old one plays on (a thread waits
   for it to be ready and says so in the conductor's inbox: SwapLoaded).
2. At the next turn boundary (the model has no turn and no note sounding) the engine cuts
   (notes in flight from the old worker carry an old epoch and are dropped), makes the new
   worker the one it talks to, and asks the old one for its context (Handover).
3. The old worker answers with its context (ContextDump) and ends; the new one gets it as its
   first context (Prime) and only then the messages the engine sent it meanwhile.

A name that is not a preset, a preset of another kind, or a model that does not load: a line
in the log and in stats(), and the old model plays on. Run on the conductor thread; the swap
reads the engine's public names only.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from livegen.kernels.errors import LivegenError
from livegen.messages import ContextDump, Handover, Prime, SetProgram, SwapLoaded


class WorkerSwap:
    def __init__(self, engine: Any, name: str, generation: int) -> None:
        self.engine, self.name, self.generation = engine, name, generation
        self.requested = time.perf_counter()
        self.preset = None
        self.worker = None  # the new decode worker, once launched
        self.old = None  # the worker it replaces, until its context came
        self.loaded_s: float | None = None
        self.state = "loading"  # loading, ready, handing over, done, failed

    @property
    def busy(self) -> bool:
        return self.state in ("loading", "ready", "handing over")

    def begin(self) -> None:
        """Check the preset here (fast, clear errors), then load it in a worker of its own."""
        from livegen.decode_worker import DecodeWorker
        from livegen.models.preset import load_preset, preset_kind

        engine = self.engine
        try:
            preset = load_preset(self.name)
            kind = preset_kind(preset.source)
            if kind not in ("midi", ""):
                raise LivegenError(f"preset {preset.name!r} is a {kind} model, not a MIDI one")
        except LivegenError as error:
            self.fail(str(error))
            return
        self.preset = preset
        spec = engine.worker_spec(str(preset.source))
        spec.takes_over = True
        self.worker = DecodeWorker(
            spec, engine.worker_messages(self.generation), engine.worker_mode
        )
        self.worker.launch()
        engine.say(f"loading preset {preset.name} beside the playing model")
        threading.Thread(target=self._wait, name="livegen-swap-wait", daemon=True).start()

    def _wait(self) -> None:
        try:
            self.worker.wait_ready()
        except LivegenError as error:
            self.engine.deliver(SwapLoaded(self.generation, str(error)))
            return
        self.engine.deliver(SwapLoaded(self.generation))

    def loaded(self, message: SwapLoaded) -> None:
        if message.reason is not None:
            self.fail(message.reason)
            return
        self.loaded_s = time.perf_counter() - self.requested
        self.state = "ready"

    def fail(self, reason: str) -> None:
        self.state = "failed"
        self.engine.say(f"preset swap to {self.name!r} failed: {reason}; the model plays on")
        if self.worker is not None:
            _stop_later(self.worker)
            self.worker = None

    def at_boundary(self, now: float) -> None:
        """If the new model is ready and the old one has no turn and no sounding note, the
        new one takes over now."""
        engine = self.engine
        if self.state != "ready" or engine.turns.sent_turn is not None or engine.output.sounding:
            return
        self.state = "handing over"
        engine.turns.flush()  # what the old model has heard, before it hands over
        self.old = engine.worker
        engine.use_worker(self.worker, self.generation, self.preset)
        self.old.send(Handover())
        program = engine.program()
        channel = engine.output.channel
        engine.fanout.synth(SetProgram(channel, program))
        engine.fanout.other("model", (0xC0 | channel, program), now, out=True)

    def handed_over(self, dump: ContextDump) -> None:
        """The old model's context came: the new one starts from it."""
        engine = self.engine
        self.worker.send(Prime(dump, engine.output.scheduler.epoch))
        _stop_later(self.old)
        self.old = None
        self.state = "done"
        took = time.perf_counter() - self.requested
        engine.swap_seconds = took
        engine.say(
            f"preset {self.preset.name} took over in {took:.2f} s (loaded in "
            f"{self.loaded_s:.2f} s, {len(dump.tokens)} tokens of context)"
        )

    def abandon(self) -> None:
        """The engine stops: a worker still loading is stopped too."""
        if self.state in ("loading", "ready") and self.worker is not None:
            self.worker.stop()
        if self.old is not None:
            self.old.stop()


def _stop_later(worker: Any) -> None:
    """Stop a worker off the conductor thread (joining its process takes a while)."""
    threading.Thread(target=worker.stop, name="livegen-swap-stop", daemon=True).start()
