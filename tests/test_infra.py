"""The two layers: four teaching files on top, infra/ (the machinery) below them, never the other way round."""
import ast
from pathlib import Path

from test_data import imported_modules

ROOT = Path(__file__).resolve().parent.parent


def test_infra_never_imports_the_trainer():
    # infra/ runs the method at scale; the method (rlef.py) imports it, so infra importing rlef, even inside a
    # function, would be a cycle and would put the method's settings into the machinery.
    files = sorted((ROOT / "infra").rglob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "parallel.py", "checkpoints.py", "memory_plan.py"}
    offenders = [str(f.relative_to(ROOT)) for f in files if "rlef" in imported_modules(f)]
    assert offenders == []


def test_model_knows_nothing_of_parallelism():
    # Tensor, vocabulary and sequence parallelism are applied to the model from infra/parallel.py; model.py
    # itself is Llama 3 and its sampling only: no torch.distributed import and no DTensor, mesh or split layer,
    # neither in model.py nor in the support modules it borrows from (infra/decode.py: CUDA graphs, buckets).
    def full_imports(path):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module)
        return names

    imports = full_imports(ROOT / "model.py")
    borrowed = [m for m in imports if m.startswith("infra")]
    assert "infra.parallel" not in borrowed
    for module in borrowed:
        imports |= full_imports(ROOT / (module.replace(".", "/") + ".py"))
    assert not [m for m in imports if m.startswith("torch.distributed") or m == "infra.parallel"]
    source = (ROOT / "model.py").read_text(encoding="utf-8")
    code = "\n".join(line.split("#")[0] for line in source.splitlines())      # comments may point at infra/
    assert [w for w in ("DTensor", "device_mesh", "sequence_parallel", "vocab_parallel", "full_tensor", "to_local")
            if w in code] == []
