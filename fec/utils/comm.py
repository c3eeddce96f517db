"""Process-group helpers that also work with no process group (one process)."""
import os

import torch
import torch.distributed as dist

_LOCAL_RANK = None


def is_dist():
    return dist.is_available() and dist.is_initialized()


def get_world_size():
    return dist.get_world_size() if is_dist() else 1


def get_rank():
    return dist.get_rank() if is_dist() else 0


def get_local_rank():
    """This process's index on its machine (which GPU it uses): set by
    ``fec.engine.defaults.init_distributed``, else the launcher's LOCAL_RANK, else 0."""
    if _LOCAL_RANK is not None:
        return _LOCAL_RANK
    return int(os.environ.get("LOCAL_RANK", 0))


def set_local_rank(local_rank):
    global _LOCAL_RANK
    _LOCAL_RANK = int(local_rank)


def is_main_process():
    return get_rank() == 0


def synchronize():
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def all_gather(obj):
    """Python objects from every rank, as a list ordered by rank."""
    if get_world_size() == 1:
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _comm_device():
    """Where tensors for a collective live: nccl takes this process's GPU, gloo the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj, src=0):
    """Rank ``src``'s ``obj`` (a small picklable value) on every rank."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def broadcast_bytes(data, src=0):
    """Rank ``src``'s ``data`` (bytes; ignored elsewhere) on every rank, sent as a
    tensor: no pickle, so a file sent this way is read like the file itself."""
    if get_world_size() == 1:
        return data
    device = _comm_device()
    size = torch.tensor([len(data) if get_rank() == src else 0], dtype=torch.int64, device=device)
    dist.broadcast(size, src)
    if get_rank() == src:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    else:
        buf = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(buf, src)
    return data if get_rank() == src else buf.cpu().numpy().tobytes()


def reduce_dict(values, average=True):
    """A dict of scalar tensors summed (or averaged) over ranks; same keys everywhere."""
    world = get_world_size()
    if world == 1:
        return values
    with torch.no_grad():
        names = sorted(values)
        stacked = torch.stack([values[k].detach().float() for k in names])
        dist.all_reduce(stacked)
        if average:
            stacked /= world
        return dict(zip(names, stacked))


def broadcast_buffers(module, src=0):
    """Every rank's buffers (BatchNorm statistics) become rank ``src``'s. DDP syncs
    buffers at the start of each forward only, so after a training step each rank
    holds its own; evaluation and checkpoints must agree with rank 0."""
    if get_world_size() == 1:
        return
    with torch.no_grad():
        for buf in module.buffers():
            dist.broadcast(buf, src)


def shutdown():
    """Leaves the process group after a successful run (every rank calls it)."""
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()
