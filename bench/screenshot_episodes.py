"""A screenshot of the tiny demo's before/after page, as a person sees it: docs/episodes.png.

    python rlef.py --model tiny --run-dir runs/tiny        # the demo: ends by naming RUN_DIR/episodes/before_after.html
    python bench/screenshot_episodes.py runs/tiny          # needs Chromium (Debian: apt-get install chromium)

The view is the page of infra/episodes.py restricted to one problem: a *secret* held-out problem (its word is
hidden in the statement, data/tiny_tasks.py) that the warm-started policy failed and the trained one solved at
turn 2, after reading the word in the feedback. When the run has no such problem the script says so, and shows
the first problem whose outcome RL improved instead. Tests do not need Chromium; only this script does.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from infra.episodes import Evaluation, by_problem, eval_file, outcome, read_episodes, render_page  # noqa: E402

RANK = {"never": 0, "single": 1, "feedback": 2, "turn1": 3}


def pick(before: dict, after: dict) -> tuple[str | None, bool]:
    """(the problem to show, whether it is the acceptance case: secret, failed before, solved at turn 2 after)."""
    def fixed_at_turn_2(name):
        solved = [e for e in after[name] if e["mode"] == "multi" and e["solved"]]
        return (after[name][0].get("difficulty") == "secret" and outcome(before.get(name, [])) in ("never", "single")
                and any(len(e["turns"]) == 2 for e in solved))
    names = sorted(after)
    wanted = [n for n in names if fixed_at_turn_2(n)]
    if wanted:
        return wanted[0], True
    better = [n for n in names if RANK[outcome(after[n])] > RANK[outcome(before.get(n, []))]]
    return (better or names or [None])[0], False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=str(ROOT / "docs" / "episodes.png"))
    parser.add_argument("--problem", help="show this problem instead of the one picked")
    parser.add_argument("--size", default="1400,1580", help="window width,height in pixels")
    a = parser.parse_args()
    run = Path(a.run_dir)
    step = json.loads((run / "summary.json").read_text())["best"]["step"]
    (before_report, before), (after_report, after) = (read_episodes(eval_file(run, s)) for s in (0, step))
    name, wanted = (a.problem, True) if a.problem else pick(by_problem(before), by_problem(after))
    print(f"problem shown: {name}" + ("" if wanted else " (NO secret problem failed before RL and solved at turn 2 "
                                                       "after it in this run: the first one RL improved instead)"))
    page = render_page([Evaluation("before RL (step 0)", before, before_report),
                        Evaluation(f"after RL (step {step})", after, after_report)],
                       "Held-out problems before and after RL (one shown)", {name})
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("no Chromium found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "page.html"
        html.write_text(page.replace('<details class="prompt">', '<details class="prompt" open>'))   # the ???
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={a.size}", f"--screenshot={Path(a.out).resolve()}", html.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"screenshot: {a.out}")


if __name__ == "__main__":
    main()
