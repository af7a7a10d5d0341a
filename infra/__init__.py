"""The machinery that runs RLEF at scale; the four teaching files (model.py, execute.py, ppo.py, rlef.py) import it.

One file per topic:

    parallel.py      processes and the ("dp", "tp") device mesh; tensor, vocabulary and sequence parallelism
                     applied to an unchanged ``model.Transformer``; FSDP2 sharding and sharded loading; the
                     sampling replica; gradient clipping over several meshes
    checkpoints.py   atomic DCP checkpoints of the training state, the policy exported as a Hugging Face
                     folder, ``latest`` and ``best.json``
    decoding.py      the decode step of ``model.generate`` as one CUDA graph and/or compiled blocks
    memory_plan.py   bytes per GPU of a run on a mesh (``--dry-run``) and the KV-cache budget of a live one

Nothing here imports rlef: settings arrive as plain values (or as the run's config object, read by field name).
"""
