"""Reading GGUF files and importing llama.cpp: shared by the llama.cpp runtime and the GGUF quantizer.

Why a module of its own: the runtime must check a GGUF file before handing it to llama.cpp (a truncated file
crashes inside C code, naming nothing), and the quantizer must check and describe the files it writes; neither
may import the other (runtimes never import quantizers). Nothing here imports llama.cpp or gguf-py at module
level, so config validation and `slmexp --help` stay cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmexp.errors import SlmexpError

INSTALL_HINT = 'pip install -e ".[gguf]"'


def import_llama_cpp() -> Any:
    """`llama_cpp`, or an error that says how to install it (it is an optional extra: it compiles from source)."""
    try:
        import llama_cpp
    except ImportError as e:
        raise SlmexpError(f"GGUF quantization and runtime=llamacpp need llama-cpp-python ({e}); "
                          f"install it with: {INSTALL_HINT}") from None
    return llama_cpp


def check_gguf(path: str | Path) -> None:
    """Raise SlmexpError naming the file if it is missing, not GGUF, unreadable or truncated.

    Reads only the header and tensor table (0.2 s for Qwen2.5-1.5B), so a truncated download or an interrupted
    export is caught here, with the file named, rather than as a crash inside llama.cpp.
    """
    path = Path(path)
    if not path.is_file():
        raise SlmexpError(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise SlmexpError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    try:
        table = read_tensor_table(path)
    except Exception as e:
        raise SlmexpError(f"{path}: corrupt or truncated GGUF header ({type(e).__name__}: {e}); "
                          "re-create or re-download it") from None
    size = path.stat().st_size
    for name, _type, start, n_bytes in table:
        if start + n_bytes > size:
            raise SlmexpError(f"{path}: truncated GGUF: tensor {name} ends at byte {start + n_bytes:,} but the "
                              f"file has {size:,} bytes; re-create or re-download it")
    if not table:
        raise SlmexpError(f"{path}: GGUF has no tensors")


# GGUF metadata value types -> struct format of fixed-size values (8 = string and 9 = array are variable).
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_tensor_table(path: str | Path) -> list[tuple[str, int, int, int]]:
    """(name, GGML type, absolute data offset, bytes) of every tensor, from the GGUF header alone."""
    return read_header(path)[1]


def read_header(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, int, int, int]]]:
    """The scalar and string metadata (arrays are skipped) and the tensor table of a GGUF, from its header alone.

    A small reader rather than `gguf.GGUFReader`, which builds a numpy view per metadata element and needs
    ~6 s for a 151k-token vocabulary (Qwen2.5); this one skips the array values (0.2 s).
    """
    import mmap
    import struct

    import gguf

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 8  # magic, version
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, pos)
        pos += 16

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", buf, pos)
            if pos + 8 + n > len(buf):
                raise ValueError("string runs past the end of the file")
            return bytes(buf[pos + 8 : pos + 8 + n]).decode("utf-8", "replace"), pos + 8 + n

        def skip_value(vtype: int, pos: int) -> tuple[Any, int]:
            if vtype in _GGUF_SCALARS:
                fmt = "<" + _GGUF_SCALARS[vtype]
                return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
            if vtype == 8:
                return string(pos)
            if vtype != 9:
                raise ValueError(f"unknown metadata value type {vtype}")
            item_type, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            if item_type in _GGUF_SCALARS:
                return None, pos + count * struct.calcsize("<" + _GGUF_SCALARS[item_type])
            for _ in range(count):
                _item, pos = skip_value(item_type, pos)
            return None, pos

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (vtype,) = struct.unpack_from("<I", buf, pos)
            value, pos = skip_value(vtype, pos + 4)
            if vtype != 9:
                meta[key] = value
        alignment = int(meta.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT))
        infos = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ggml_type)]
            n_elements = 1
            for d in dims:
                n_elements *= d
            infos.append((name, ggml_type, offset, n_elements // block * type_size))
        data_start = -(-pos // alignment) * alignment
    return meta, [(name, t, data_start + offset, n) for name, t, offset, n in infos]


def tensor_types(path: str | Path) -> dict[str, int]:
    """How many tensors of each GGML type (F32, F16, Q4_K, ...) a GGUF file holds."""
    from collections import Counter

    import gguf

    counts = Counter(gguf.GGMLQuantizationType(t).name for _name, t, _start, _n in read_tensor_table(path))
    return dict(counts.most_common())


def file_type(path: str | Path) -> str:
    """The GGUF's quantization type as llama.cpp names it (`Q4_1`, `Q4_K_M`, `F16`), from `general.file_type`.

    Why not the tensor types alone: a `Q4_K_M` file mixes Q4_K and Q6_K tensors (and keeps norms in F32), so only
    the header names the recipe. A file without the key (old writers) is named by its most common quantized
    tensor type, else its most common type.
    """
    import gguf

    meta, table = read_header(path)
    ft = meta.get("general.file_type")
    if ft is not None:
        try:
            return gguf.LlamaFileType(int(ft)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    from collections import Counter

    counts = [t for t, _n in Counter(gguf.GGMLQuantizationType(t).name for _name, t, _s, _b in table).most_common()]
    quantized = [t for t in counts if t not in ("F32", "F16", "BF16")]
    return (quantized or counts or ["unknown"])[0]
