"""A stand-in for `fastdream generate` in the batch tests (no torch): PROMPT --out DIR --seed S [--resume] [...].

Appends one JSON line per call to $FAKE_GEN_LOG, writes DIR/checkpoints/last.pt after each of $FAKE_GEN_STEPS steps
(continuing from it with --resume), and exits 0. Hooks for the tests:
  FAKE_GEN_BLOCK="PROMPT|SEED": that run, when not resuming, writes its checkpoint and DIR/blocked, then waits until
      it is killed or interrupted (Ctrl-C: logs "interrupted", exits 130);
  FAKE_GEN_FAIL="PROMPT|SEED": that run exits 7;
  FAKE_GEN_BARRIER=DIR:N: each run waits (at most 30 s) until N runs have started, to prove they run concurrently.
"""
import json
import os
import sys
import time
from pathlib import Path


def log(event, **kw):
    with open(os.environ["FAKE_GEN_LOG"], "a") as f:
        f.write(json.dumps({"event": event, **kw}) + "\n")


def main():
    argv = sys.argv[1:]
    prompt = argv[0]
    out = Path(argv[argv.index("--out") + 1])
    seed = int(argv[argv.index("--seed") + 1])
    resume = "--resume" in argv
    extra = [a for a in argv[1:] if a not in ("--resume",)]
    key = f"{prompt}|{seed}"
    info = dict(prompt=prompt, seed=seed, resume=resume, pid=os.getpid(), argv=extra,
                cuda=os.environ.get("CUDA_VISIBLE_DEVICES"))
    log("start", **info)
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    step = int(ckpt.read_text()) if resume else 0
    barrier = os.environ.get("FAKE_GEN_BARRIER")
    if barrier:
        bdir, n = barrier.rsplit(":", 1)
        Path(bdir, str(os.getpid())).touch()
        deadline = time.monotonic() + 30
        while len(os.listdir(bdir)) < int(n) and time.monotonic() < deadline:
            time.sleep(0.02)
    if os.environ.get("FAKE_GEN_FAIL") == key:
        log("fail", **info)
        return 7
    for step in range(step + 1, int(os.environ.get("FAKE_GEN_STEPS", "3")) + 1):
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(str(step))
        os.replace(tmp, ckpt)
        if os.environ.get("FAKE_GEN_BLOCK") == key and not resume:
            (out / "blocked").touch()
            try:
                while True:
                    time.sleep(0.02)
            except KeyboardInterrupt:
                log("interrupted", **info)
                return 130
    log("finish", step=step, **info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
