# The sequence of c10d Store operations of test/helpers/store-worker.ts, on PyTorch's own TCPStore (one process,
# its server): the reference for freeadv's rendezvous store. Prints the results as one JSON line.
import json, sys
from datetime import timedelta
import torch.distributed as dist

s = dist.TCPStore("127.0.0.1", int(sys.argv[1]), 1, True, timedelta(seconds=10))
t = lambda b: b.decode()


def check(keys):  # Store::check has no Python binding in 1.13: a wait that gives up at once says the same
    try:
        s.wait(keys, timedelta(milliseconds=1))
        return True
    except RuntimeError:
        return False


ops = [s.add("n", 3), s.add("n", 4), s.add("n", -2), t(s.get("n"))]
ops += [t(s.compare_set("cs", "x", "y")), check(["cs"])]
ops += [t(s.compare_set("cs", "", "a")), t(s.compare_set("cs", "b", "c")), t(s.compare_set("cs", "a", "c")), t(s.get("cs"))]
s.set("s", "hello")
ops += [t(s.get("s")), check(["s", "n"]), check(["s", "never"])]
ops += [s.delete_key("s"), s.delete_key("s"), check(["s"])]
n0 = s.num_keys()
s.set("k1", "1")
s.set("k2", "2")
s.set("k1", "again")
ops += [s.num_keys() - n0]
print(json.dumps({"ops": ops}))
