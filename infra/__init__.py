"""The machinery that runs RLEF at scale; the four teaching files (model.py, execute.py, ppo.py, rlef.py) import it.

One file per topic:

    parallel.py      processes and the ("dp", "tp") device mesh; tensor, vocabulary and sequence parallelism
                     applied to an unchanged ``model.Transformer``; FSDP2 sharding and sharded loading; the
                     sampling replica; gradient clipping over several meshes
    checkpoints.py   atomic DCP checkpoints of the training state, the policy exported as a Hugging Face
                     folder, ``latest`` and ``best.json``
    sandbox.py       the judge's fork servers: namespaces, mounts, seccomp, limits, cleanup, the reply protocol
                     and the plain-data encoding (standard library only: it is also the server process)
    decode.py        the fast decode step of model.generate: shape buckets, one torch.compile for all of them,
                     CUDA graphs per bucket (and a pool keeping them across calls), top-p over the top-k
    memory_plan.py   bytes per GPU of a run on a mesh (``--dry-run``) and the KV-cache budget of a live one
    reporting.py     the evaluation's measures from episode records (pass@k, chrF, per-turn rates), the report
                     and before/after table as text, the step's log line, the learning curve
    episodes.py      the episodes on disk (every one of an evaluation, a sample of each training batch), the
                     self-contained HTML page that shows them as conversations, and ``rlef.py show``
    inputs.py        the command line's flags and checks of what the user gives (flags, data files, weights
                     folders), one clear error each before any work starts

Nothing here imports rlef: settings arrive as plain values or small dataclasses defined here.
"""
