"""`slmexp export DIR --format eee|hf|lm-eval|latex --out OUT`: a comparison's results in formats other tools read.

Why: a table made with slmexp should travel beyond slmexp: to Every Eval Ever's shared schema, to a Hugging Face model
repo's `.eval_results/`, to lm-eval's own `--log_samples` layout (its viewers and scripts), and into a thesis as one
LaTeX macro per table cell. Every format is written from the records alone (run.json, generations.jsonl and the
lm-eval files a run dir holds), as `slmexp report` is, so an export can be redone from outputs/ at any time.

One module per format (`eee`, `hf`, `lmeval`, `latex`), each with `export(runs, out) -> [paths]`; `runs` reads the
run dirs once for all of them; `cli` parses the command line and dispatches. docs/exporting.md says what each file
holds.
"""
