"""Code shared by the training jobs in ``jobs/``: process runtime (threads, contexts, kvstore,
rank), metrics files, data sharding, the text corpus and its buckets, the language model,
and the optimisation helpers. Shipped with every job (the job YAMLs use ``workdir: .``).

Nothing here imports MXNet at import time except the modules that are model code
(``lm``, ``optim``); ``runtime`` imports it inside functions so thread settings take effect.
"""
