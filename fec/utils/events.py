"""One record of metrics per logging step, sent to several writers: console, a
JSON-lines file and TensorBoard. Writers exist on rank 0 only."""
import json
import logging
import os


class JSONWriter:
    """Appends one JSON object per record to ``OUTPUT_DIR/metrics.json``."""

    def __init__(self, path):
        self._f = open(path, "a", buffering=1)

    def write(self, iteration, scalars):
        self._f.write(json.dumps({"iteration": iteration, **scalars}, sort_keys=True) + "\n")

    def close(self):
        self._f.close()


class TensorboardWriter:
    def __init__(self, log_dir):
        from torch.utils.tensorboard import SummaryWriter

        self._w = SummaryWriter(log_dir)

    def write(self, iteration, scalars):
        for k, v in scalars.items():
            if isinstance(v, (int, float)):
                self._w.add_scalar(k, v, iteration)
        self._w.flush()

    def close(self):
        self._w.close()


class EventWriters:
    """Fans a record out to every writer; a no-op on ranks other than 0."""

    def __init__(self, output_dir, enabled=True):
        self.writers = []
        if enabled and output_dir:
            os.makedirs(output_dir, exist_ok=True)
            self.writers.append(JSONWriter(os.path.join(output_dir, "metrics.json")))
            try:
                self.writers.append(TensorboardWriter(output_dir))
            except ImportError as e:  # tensorboard is a dependency, but do not die on it
                logging.getLogger(__name__).warning("TensorBoard events disabled: %s", e)

    def write(self, iteration, scalars):
        for w in self.writers:
            w.write(iteration, scalars)

    def close(self):
        for w in self.writers:
            w.close()
        self.writers = []
