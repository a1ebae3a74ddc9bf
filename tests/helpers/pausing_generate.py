"""The real `fastdream generate`, run in this process, for the Ray batch tests: a first attempt (no --resume) of the
prompt named by $PAUSE_PROMPT (default: every prompt) stops after its first checkpoint, writes OUT/blocked
({"step", "pid", "worker": the parent's pid}) and waits there to be killed, so a test can kill its worker mid-run."""
import json
import os
import sys
import time
from pathlib import Path

from fastdream import cli
from fastdream.training import trainer


def main() -> int:
    argv = sys.argv[1:]
    sep = argv.index("--")
    out, prompt = Path(argv[argv.index("--out") + 1]), argv[sep + 1]
    if "--resume" not in argv[:sep] and os.environ.get("PAUSE_PROMPT", prompt) == prompt:
        save = trainer.Trainer.save

        def save_then_wait(self):
            path = save(self)
            (out / "blocked").write_text(json.dumps({"step": self.step, "pid": os.getpid(), "worker": os.getppid()}))
            while True:
                time.sleep(0.05)
            return path

        trainer.Trainer.save = save_then_wait
    return cli.main(["generate", *argv])


if __name__ == "__main__":
    sys.exit(main())
