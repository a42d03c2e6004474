"""Training curves (train/val/VQA loss per phase) as one PNG."""

from __future__ import annotations

from pathlib import Path


def plot_curves(history: dict[str, list[dict]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, max(len(history), 1), figsize=(6 * max(len(history), 1), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], history.items()):
        for key, style in (("loss", "-"), ("val_loss", "o-"), ("vqa_loss", "--")):
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), style, label=key, markersize=3)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
