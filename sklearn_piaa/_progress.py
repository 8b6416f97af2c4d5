"""Progress bars (tqdm, on stderr) for the steps that take more than a few seconds."""

__all__ = ["progress"]


class _Silent:
    def update(self, n=1, **postfix):
        pass

    def close(self):
        pass


class _Bar:
    def __init__(self, **kwargs):
        from tqdm.auto import tqdm

        self._bar = tqdm(**kwargs)

    def update(self, n=1, **postfix):
        if postfix:
            # refresh=False: the bar redraws at its own pace, not on every iteration.
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(n)

    def close(self):
        self._bar.close()


def progress(total, desc, initial=0, enabled=True, unit="it"):
    """A progress bar with ``update(n=1, **postfix)`` and ``close()``; a no-op if disabled.

    Parameters
    ----------
    total : int
    desc : str
    initial : int, default=0
        Steps already done (a resumed run).
    enabled : bool, default=True
    unit : str, default="it"
    """
    if not enabled:
        return _Silent()
    return _Bar(total=total, initial=initial, desc=desc, unit=unit, mininterval=0.5,
                dynamic_ncols=True, leave=True)
