"""jaxmlp: pure-function multi-layer perceptrons on JAX, with a hand-written backprop twin.

    import jax, jaxmlp
    params = jaxmlp.init_mlp(jax.random.key(0), (784, 512, 10))   # [Layer(W, b), Layer(W, b)]
    scores = jaxmlp.mlp_apply(params, x)                          # (B, 784) -> (B, 10)
    loss, grads = jaxmlp.loss_and_grad(params, x, y, method="manual")
    params, history = jaxmlp.fit(jaxmlp.TrainConfig(hidden=(100,)), splits.train, splits.val)

The trainer's one public way in is here (fit, plan_run, evaluate, predict, sweep, batch_study); the parts a
run is made of are in `jaxmlp.training`, documented module by module.

The public names below are imported from their modules on first use (PEP 562), so `import
jaxmlp` (and the `jaxmlp` command's --help) does not import JAX.
"""
import importlib

__version__ = "0.1.0"

_PUBLIC = {  # module -> the names it exports here
    "jaxmlp.names": ("ACTIVATIONS", "INITS", "PRECISIONS"),
    "jaxmlp.activations": ("Activation", "get_activation"),
    "jaxmlp.losses": ("LOSSES", "Loss", "get_loss", "l2_penalty"),
    "jaxmlp.mlp": ("Layer", "init_mlp", "mlp_apply", "param_count", "sizes_of"),
    "jaxmlp.backprop": ("LayerCache", "forward", "backward", "loss_and_grad", "objective"),
    "jaxmlp.data": ("DataError", "Dataset", "DataSplits", "load_dataset", "from_arrays", "read_idx",
                    "load_idx_dataset", "load_cifar10", "load_npz", "load_csv", "spiral", "checkerboard", "circles",
                    "moons", "blobs", "teacher", "sin_1d", "standardize", "stratified_split"),
    "jaxmlp.metrics": ("activation_stats", "dead_fraction", "saturation_fraction", "layer_grad_norms",
                       "loss_grad_and_stats"),
    "jaxmlp.dataset_metrics": ("dataset_activation_stats",),
    "jaxmlp.config": ("TrainConfig",),
    "jaxmlp.training.fit": ("fit",),
    "jaxmlp.training.evaluate": ("evaluate",),
    "jaxmlp.training.predict": ("predict",),
    "jaxmlp.training.plan": ("Plan", "plan_run"),
    "jaxmlp.training.history": ("History", "Callback"),
    "jaxmlp.training.policy": ("TrainingDiverged",),
    "jaxmlp.training.audit": ("GradientAuditFailed",),
    "jaxmlp.sweeps": ("sweep", "SweepResult", "ModelResult"),
    "jaxmlp.batchsize.study": ("batch_study",),
    "jaxmlp.batchsize.result": ("StudyResult",),
    "jaxmlp.parallel": ("DataParallel", "data_parallel", "make_mesh"),
    "jaxmlp.precision": ("get_policy",),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
