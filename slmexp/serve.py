"""`python -m slmexp.serve --model FILE.gguf --port 8080`: llama-cpp-python's OpenAI-compatible server, as slmexp
loads GGUF files.

Why not `python -m llama_cpp.server` directly: its loader cannot turn off llama.cpp's "extra" weight buffers, whose
AMX path crashes on AMX Xeons (see `slmexp.runtimes.llamacpp._model_params`); this wrapper sets
`use_extra_bufts` like `runtime=llamacpp` does and otherwise passes every argument through unchanged. It is what
`runtime=openai` is tested against, and a way to serve the offline LLM baseline to other tools.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    try:
        import uvicorn
        from llama_cpp.server.app import create_app
        from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
        from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings
    except ImportError as e:
        sys.exit(f"slmexp.serve needs llama-cpp-python's server extras: pip install -e '.[serve]' ({e})")

    from slmexp.runtimes.llamacpp import _model_params

    parser = argparse.ArgumentParser(prog="python -m slmexp.serve", description=__doc__.splitlines()[0])
    add_args_from_model(parser, Settings)
    parser.add_argument("--use_extra_bufts", action="store_true",
                        help="keep llama.cpp's AMX/repacked weight buffers (off: they crash on AMX Xeons)")
    # llama-cpp-python's default cuts a running request off when the next one arrives (it returns empty output);
    # a benchmark at concurrency > 1 needs requests queued instead.
    parser.set_defaults(interrupt_requests=False)
    args = parser.parse_args(argv)
    server = parse_model_from_args(ServerSettings, args)
    model = parse_model_from_args(ModelSettings, args)
    with _model_params(use_extra_bufts=bool(args.use_extra_bufts)):
        app = create_app(server_settings=server, model_settings=[model])  # loads the model now
    uvicorn.run(app, host=server.host, port=int(server.port), log_level="warning")


if __name__ == "__main__":
    main()
