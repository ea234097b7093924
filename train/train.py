"""Training: data -> model -> artifacts, seeded and measured.

``python -m train`` is the command line; :func:`run` is the whole stage.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge import contract
from edge.fsutil import atomic_path, sha256_file, write_json

from . import data as mnist

log = logging.getLogger("train")


@dataclass
class TrainConfig:
    model: str = "edge"
    epochs: int | None = None  # None: the model's recipe
    batch_size: int | None = None
    seed: int = 1
    out: str = "artifacts"
    data_dir: str | None = None
    download: bool = False
    fast: bool = False
    val_size: int = 5000
    patience: int = 5
    threads: int = 0  # 0: all cores
    detector_crops: int = 0  # extra training images cut by the edge detector (train.crops)
    flagged_ones: float = 0.0  # this fraction of the training ones is added again with a flag (train.flags)
    motion_blur: float = 0.0  # this share of each batch is also streaked by motion (train.augment.motion_blur)


@dataclass
class TrainResult:
    test_accuracy: float
    test_loss: float
    val_accuracy: float
    epochs_run: int
    train_seconds: float
    params: int
    out: Path


class _Stage:
    """Logs one line per stage with its duration."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            log.info("%-10s %6.1fs %s", self.name, time.perf_counter() - self.t0, getattr(self, "note", ""))


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "platform": platform.platform(),
    }


def _lr_schedule(recipe, steps_per_epoch: int, epochs: int):
    import keras

    total = max(1, steps_per_epoch * epochs)
    if recipe.schedule == "onecycle":
        warm = min(steps_per_epoch, total // 5)
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=recipe.lr / 10,
            decay_steps=max(1, total - warm),
            alpha=0.01,
            warmup_target=recipe.lr,
            warmup_steps=warm,
        )
    return recipe.lr


def _dataset(x, y, *, batch: int, seed: int, augment: bool, motion: float = 0.0):
    """Shuffled, repeated, batched tf.data pipeline; augmentation keyed by (seed, global step)."""
    import tensorflow as tf

    from .augment import augment_batch

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch, drop_remainder=True)

    def prep(step, xy):
        xb, yb = xy
        xb = tf.cast(xb, tf.float32)[..., None] / 255.0
        if augment:
            xb = augment_batch(xb, tf.stack([tf.constant(seed, tf.int64), step]), motion=motion)
        return xb, yb

    return ds.enumerate().map(prep, num_parallel_calls=1, deterministic=True).prefetch(2)


def _plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="train")
        if "val_" + key in history:
            ax.plot(epochs, history["val_" + key], "s-", label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _plot_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(10):
        for j in range(10):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if i == j else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int = 10) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true.astype(int), y_pred.astype(int)), 1)
    return cm


def run(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.model`` and write every artifact into ``cfg.out``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from . import models

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = models.RECIPES[cfg.model] if cfg.model in models.RECIPES else None
    if recipe is None:
        raise ValueError(f"unknown model {cfg.model!r}; choose one of: {', '.join(models.BUILDERS)}")
    epochs = cfg.epochs or (1 if cfg.fast else recipe.epochs)
    batch = cfg.batch_size or (64 if cfg.fast else recipe.batch_size)

    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    if cfg.threads:
        tf.config.threading.set_intra_op_parallelism_threads(cfg.threads)

    with _Stage("data") as st:
        raw = mnist.load_mnist(cfg.data_dir, allow_download=cfg.download)
        fingerprint = mnist.data_fingerprint(raw)
        sp = mnist.split(raw, val_size=cfg.val_size, seed=cfg.seed)
        x_train, y_train, x_val, y_val = sp.x_train, sp.y_train, sp.x_val, sp.y_val
        if cfg.fast:  # a few thousand images: a smoke run of the real code path
            keep = mnist.stratified_sample(y_train, 6000, seed=cfg.seed)
            x_train, y_train = x_train[keep], y_train[keep]
            keep = mnist.stratified_sample(y_val, 1000, seed=cfg.seed)
            x_val, y_val = x_val[keep], y_val[keep]
        st.note = f"train {len(x_train)}, val {len(x_val)}, test {len(sp.x_test)}"

    if cfg.flagged_ones:
        from .flags import flagged_ones

        with _Stage("flags") as st:
            # Copies of training ones only; the validation and test sets stay as MNIST has them.
            x_flag, y_flag = flagged_ones(x_train, y_train, cfg.flagged_ones, seed=cfg.seed)
            x_train = np.concatenate([x_train, x_flag])
            y_train = np.concatenate([y_train, y_flag])
            st.note = f"{len(x_flag)} flagged ones added ({cfg.flagged_ones:.0%} of the training ones)"

    if cfg.detector_crops:
        from .crops import detector_crops

        with _Stage("crops") as st:
            # Only training digits go into the frames; validation and test digits stay unseen.
            x_crops, y_crops = detector_crops(x_train, y_train, cfg.detector_crops, seed=cfg.seed)
            x_train = np.concatenate([x_train, x_crops])
            y_train = np.concatenate([y_train, y_crops])
            st.note = f"{len(x_crops)} detector crops of training digits added"

    model = models.build(cfg.model)
    steps = len(x_train) // batch
    # One-hot targets everywhere so label smoothing is one number in the recipe.
    model.compile(
        optimizer=keras.optimizers.Adam(_lr_schedule(recipe, steps, epochs)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    y_fit = np.eye(10, dtype=np.float32)[y_train]
    y_val_fit = np.eye(10, dtype=np.float32)[y_val]
    train_ds = _dataset(x_train, y_fit, batch=batch, seed=cfg.seed, augment=recipe.augment, motion=cfg.motion_blur)
    val = (contract.to_float(x_val), y_val_fit)
    callbacks = []
    if recipe.early_stopping and not cfg.fast:
        callbacks.append(
            # val_loss, not val_accuracy: 5,000 images make accuracy move in 0.02% steps of noise.
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=True, verbose=1
            )
        )
    log.info("model      %s: %d parameters, %d epochs x %d steps (batch %d)", cfg.model, model.count_params(),
             epochs, steps, batch)
    with _Stage("fit") as st:
        t0 = time.perf_counter()
        hist = model.fit(train_ds, steps_per_epoch=steps, epochs=epochs, validation_data=val,
                         callbacks=callbacks, verbose=2 if not cfg.fast else 0)
        train_seconds = time.perf_counter() - t0
        history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        st.note = f"{len(history['loss'])} epochs"

    with _Stage("evaluate") as st:
        # Test set: final evaluation only. Nothing above looked at it.
        x_test = contract.to_float(sp.x_test)
        probs = model.predict(x_test, batch_size=500, verbose=0)
        pred = probs.argmax(axis=1)
        test_acc = float((pred == sp.y_test).mean())
        test_loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(pred)), sp.y_test], 1e-12, None))))
        val_pred = model.predict(contract.to_float(x_val), batch_size=500, verbose=0).argmax(axis=1)
        val_acc = float((val_pred == y_val).mean())
        cm = confusion_matrix(sp.y_test, pred)
        st.note = f"test accuracy {test_acc:.4%}, loss {test_loss:.4f}"

    with _Stage("save") as st:
        model_path = out / "model.keras"
        with atomic_path(model_path) as tmp:
            model.save(tmp)
        write_json(out / "history.json", history)
        _plot_curves(history, out / "training_curves.png")
        _plot_confusion(cm, out / "confusion_matrix.png", f"{cfg.model}: test accuracy {test_acc:.2%}")
        metrics = {
            "model": cfg.model,
            "params": int(model.count_params()),
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "val_accuracy": val_acc,
            "epochs_run": len(history["loss"]),
            "train_seconds": round(train_seconds, 2),
            "per_class_accuracy": [float(cm[c, c] / max(1, cm[c].sum())) for c in range(10)],
            "confusion_matrix": cm.tolist(),
            "reported_by_seed_article": recipe.reported,
        }
        write_json(out / "metrics.json", metrics)
        config = {
            **asdict(cfg),
            "epochs": epochs,
            "batch_size": batch,
            "recipe": asdict(recipe),
            "contract_version": contract.CONTRACT_VERSION,
            "data_sha256": fingerprint,
            "train_size": int(len(x_train)),
            "val_size": int(len(x_val)),
            "versions": _versions(),
            "model_sha256": sha256_file(model_path),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(out / "train_config.json", config)
        st.note = f"{model_path} ({model_path.stat().st_size / 1024:.0f} KB)"

    print(json.dumps({"model": cfg.model, "test_accuracy": round(test_acc, 4), "test_loss": round(test_loss, 4),
                      "train_seconds": round(train_seconds, 1), "out": str(out)}))
    return TrainResult(test_acc, test_loss, val_acc, len(history["loss"]), train_seconds,
                       int(model.count_params()), out)

