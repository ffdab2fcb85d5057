#!/usr/bin/env bash
# The wheel as a new user gets it: build it, check what it holds, install it into a
# fresh virtual environment WITHOUT extras (dependencies from the package index), and
# run the command line from a directory outside the repository: a tiny train and
# evaluation must write their numbers and skip the plots with one warning.
#
#   bash scripts/wheel_check.sh            (make wheel-check)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
unset PYTHONPATH
t0=$SECONDS
step() { echo "[wheel-check $((SECONDS - t0))s] $*"; }

step "building the wheel"
# From a copy of the files git tracks (or would): no stale build/ directory, no
# untracked leftovers, nothing written into the checkout.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | (cd "$REPO" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$WORK/src"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/vograd-*.whl)"

step "checking its contents: $(basename "$WHEEL")"
"$PYTHON" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
top = sorted({n.split("/")[0] for n in names})
info = [t for t in top if t.endswith(".dist-info")]
assert top == ["vograd"] + info and len(info) == 1, f"top-level entries: {top}"
need = ["vograd/tasks/pretrained/metz2019-small.ckpt", "vograd/tasks/pretrained/metz2019-mixed.ckpt",
        "vograd/tasks/datasets/data/fashion_mnist_subset.npz",
        "vograd/tasks/datasets/data/LICENSE-fashion-mnist.txt",
        f"{info[0]}/licenses/LICENSE", f"{info[0]}/entry_points.txt"]
missing = [n for n in need if n not in names]
assert not missing, f"missing from the wheel: {missing}"
assert not [n for n in names if n.startswith(("tests/", "docs/", "scripts/"))]
meta = zipfile.ZipFile(sys.argv[1]).read(f"{info[0]}/METADATA").decode()
assert "License-Expression: Apache-2.0" in meta, "no licence expression in METADATA"
print(f"  {len(names)} files, one top-level package (vograd), package data and licences present")
EOF

step "installing it into a fresh venv, no extras"
"$PYTHON" -m venv "$WORK/venv"
# (pip's notes about this machine's local index folders are filtered out)
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL" 2> >(grep -v "is ignored: it is neither" >&2)
VOGRAD="$WORK/venv/bin/vograd"
cd "$WORK"  # away from the repository: nothing may come from it
"$WORK/venv/bin/python" - <<'EOF'
import importlib.util, vograd
assert "/venv/" in vograd.__file__, vograd.__file__
assert importlib.util.find_spec("matplotlib") is None, "matplotlib came with the base install"
# Every command's module imports without the extras (figures are drawn lazily).
import vograd.benchmarks.estimators.run, vograd.benchmarks.speed.run, vograd.recipes.ablations  # noqa
import vograd.interop.npz, vograd.metrics  # noqa
print(f"  vograd from {vograd.__file__}")
EOF

if "$VOGRAD" --help | grep -q -- "--version"; then
    step "vograd --version"; "$VOGRAD" --version
fi
step "vograd recipes"
"$VOGRAD" recipes | tee "$WORK/recipes.txt"
grep -q "tiny" "$WORK/recipes.txt"

step "vograd train metz2019 --preset tiny"
"$VOGRAD" train metz2019 --preset tiny --out "$WORK/run" --no-progress 2> "$WORK/train.err"
step "vograd eval"
"$VOGRAD" eval "$WORK/run" --no-progress --cache-dir "$WORK/cache" > "$WORK/eval.out" 2> "$WORK/eval.err"
cat "$WORK/eval.out"
for f in config.json metrics.jsonl theta.ckpt eval/results.json eval/report.md; do
    test -s "$WORK/run/$f" || { echo "missing $f"; exit 1; }
done
if ls "$WORK"/run/*.png "$WORK"/run/eval/*.png 2>/dev/null; then
    echo "plots written without matplotlib?"; exit 1
fi
for log in train eval; do
    n="$(grep -c "matplotlib is not installed" "$WORK/$log.err" || true)"
    if [ "$n" != 1 ]; then
        echo "vograd $log: expected one matplotlib warning, got $n:"; cat "$WORK/$log.err"; exit 1
    fi
done
grep -q "| learned |" "$WORK/eval.out"
step "passed: the installed wheel trains, evaluates and reports without extras"
