"""A stand-in for `fastdream generate` in the batch tests (no torch): [options] --out DIR --seed S [--resume] --
PROMPT [key=value ...], as the batch calls it.

Appends one JSON line per call to $FAKE_GEN_LOG, writes DIR/checkpoints/last.pt after each of $FAKE_GEN_STEPS steps
(continuing from it with --resume), and exits 0. Hooks for the tests, from the environment or, for Ray workers
that do not share the test's environment, from `fake.NAME=VALUE` overrides (fake.log, fake.block, ...):
  FAKE_GEN_BLOCK="PROMPT|SEED": that run, when not resuming, writes its checkpoint and DIR/blocked, then waits until
      it is killed or interrupted (Ctrl-C: logs "interrupted", exits 130);
  FAKE_GEN_FAIL="PROMPT|SEED": that run exits 7;
  FAKE_GEN_BARRIER=DIR:N: each run waits (at most 30 s) until N runs have started, to prove they run concurrently;
  FAKE_GEN_SLEEP=S: each step sleeps S seconds.
"""
import json
import os
import sys
import time
from pathlib import Path


def hooks(overrides):
    found = {k[len("FAKE_GEN_"):].lower(): v for k, v in os.environ.items() if k.startswith("FAKE_GEN_")}
    found.update(o[len("fake."):].split("=", 1) for o in overrides if o.startswith("fake."))
    return found


def log(path, event, **kw):
    with open(path, "a") as f:
        f.write(json.dumps({"event": event, **kw}) + "\n")


def wait_at_barrier(barrier):
    bdir, n = barrier.rsplit(":", 1)
    Path(bdir, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(bdir)) < int(n) and time.monotonic() < deadline:
        time.sleep(0.02)


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    options, prompt, overrides = argv[:sep], argv[sep + 1], argv[sep + 2:]
    out = Path(options[options.index("--out") + 1])
    seed = int(options[options.index("--seed") + 1])
    resume = "--resume" in options
    hook = hooks(overrides)
    key = f"{prompt}|{seed}"
    extra = [a for a in options if a != "--resume"] + overrides
    info = dict(prompt=prompt, seed=seed, resume=resume, pid=os.getpid(), ppid=os.getppid(), argv=extra,
                cuda=os.environ.get("CUDA_VISIBLE_DEVICES"))
    log(hook["log"], "start", **info)
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    step = int(ckpt.read_text()) if resume else 0
    if hook.get("barrier"):
        wait_at_barrier(hook["barrier"])
    if hook.get("fail") == key:
        log(hook["log"], "fail", **info)
        return 7
    for step in range(step + 1, int(hook.get("steps", "3")) + 1):
        time.sleep(float(hook.get("sleep", "0")))
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(str(step))
        os.replace(tmp, ckpt)
        if hook.get("block") == key and not resume:
            (out / "blocked").touch()
            try:
                while True:
                    time.sleep(0.02)
            except KeyboardInterrupt:
                log(hook["log"], "interrupted", **info)
                return 130
    log(hook["log"], "finish", step=step, **info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
