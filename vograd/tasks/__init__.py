"""Learned-optimizer inner problems, learned optimizers, datasets and toy systems."""


def __getattr__(name):
    # Lazy, so that importing one subpackage (e.g. vograd.tasks.datasets) does not pull
    # in vograd and every task family.
    if name == "LearnedOptimizerSystem":
        from vograd.tasks.system import LearnedOptimizerSystem

        return LearnedOptimizerSystem
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")


__all__ = ["LearnedOptimizerSystem"]
