"""i-PI socket driver: `symprobe-ipi --unix NAME --model MODEL --structure FILE ...`.

MODEL is a model file or a bundled model name (e.g. water-pet); the rotation and runtime flags
(--rotations, --inversion, --randomize, --seed, --chunk, --skin, --threads, --device,
--correction, ...) come from the core's option table and are checked by the core. --finite
evaluates a gas-phase structure without periodic images; --mts-unix/--mts-inet serve i-PI's two
levels of multiple time stepping (plain model; average minus plain) from one process. The structure's elements are checked
against the model before connecting, so a bad model, option or structure is an error (status 2)
at once. The driver then retries for --connect-timeout seconds while i-PI starts (status 2 when
it gives up); a unix socket file that keeps refusing connections for a few seconds is a stale
file left by an i-PI that stopped or crashed, and is reported as such after about 3 s
(status 2). i-PI disappearing is status 1, EXIT or SIGTERM status 0.

Atomic units (Bohr, Hartree) exist only at the wire: `AtomicUnitsEvaluator` converts to and
from the core's Angstrom and eV. i-PI's cell matrix h holds the lattice vectors as columns; the
core's cell holds them as rows, so cell = h^T. The virial W = -sum_e r_e (x) dE/dr_e is sent
as it is (i-PI rotates it as R^T W R, like the core). The batched protocol (i-PI announces
`batch_size:N` in INIT) evaluates all structures of a message in one model call; random
rotations advance by one step per POSDATA message answered (the protocol sends no step number).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

import numpy as np

from .units import BOHR_A, HARTREE_EV

HEADER = 12
STATUS, NEEDINIT, READY, HAVEDATA = b"STATUS      ", b"NEEDINIT    ", b"READY       ", b"HAVEDATA    "
INIT, POSDATA, GETFORCE, FORCEREADY, EXIT = (b"INIT        ", b"POSDATA     ", b"GETFORCE    ",
                                            b"FORCEREADY  ", b"EXIT        ")


class ProtocolError(RuntimeError):
    """The server sent something the i-PI protocol does not allow."""


class ServerGone(RuntimeError):
    """The server closed the connection."""


class AtomicUnitsEvaluator:
    """Evaluates structures given in i-PI's units and conventions; shared by the socket driver
    and the `i-pi-py_driver -m custom` PES (symprobe/ipi_pes.py).

    model: a loaded symprobe.Model; numbers: atomic numbers of the atoms in i-PI's order;
    rotation_energies: add the energy of every rotation to the extras (eV); finite: the
    structure is a finite system (a gas-phase molecule in i-PI's large box), evaluated without
    periodic images: its net torque is defined, and correction torque-free removes it.
    """

    LEVELS = ("full", "plain", "correction")

    def __init__(self, model, numbers, rotation_energies: bool = False, finite: bool = False,
                 level: str = "full", plain_cache=None):
        """level (multiple time stepping): "full" evaluates the model with its rotations, "plain"
        without them (the fast level), "correction" the rotation average minus the plain model
        (the slow level); plain_cache: a PlainCache shared by the plain and correction levels
        of one driver, so that the plain evaluation of a slow step is done once."""
        if level not in self.LEVELS:
            raise ValueError(f"level must be one of {', '.join(self.LEVELS)}, got '{level}'")
        if level != "full" and model.rotations == "none":
            raise ValueError("multiple time stepping needs rotations (e.g. --rotations grid 2 --inversion): "
                             "the slow level is their average minus the plain model")
        self.model = model
        self.numbers = np.asarray(numbers, dtype=np.int64)
        model.check_numbers(self.numbers)  # before any connection: a clear error at once
        self.rotation_energies = rotation_energies
        self.pbc = not finite
        self.level = level
        self.plain_cache = plain_cache if plain_cache is not None else PlainCache()

    def _compute(self, positions, cells, symmetrize):
        if len(positions) == 1:
            return [self.model.compute(positions[0], self.numbers, cells[0], self.pbc,
                                       forces_rms_spread=symmetrize, symmetrize=symmetrize)]
        return self.model.compute_batch(positions, self.numbers, cells, self.pbc,
                                        forces_rms_spread=symmetrize, symmetrize=symmetrize)

    def evaluate(self, cells_h, positions_bohr):
        """cells_h: list of 3x3 h (Bohr, lattice vectors as columns); positions_bohr: list of
        [N, 3] (Bohr). Returns a list of (energy Ha, forces [N,3] Ha/Bohr, virial [3,3] Ha,
        extras JSON string)."""
        n = len(self.numbers)
        for pos in positions_bohr:
            if len(pos) != n:
                raise ProtocolError(f"i-PI sent {len(pos)} atoms but the structure has {n}")
        cells = [np.asarray(h, float).reshape(3, 3).T * BOHR_A for h in cells_h]
        positions = [np.asarray(p, float).reshape(n, 3) * BOHR_A for p in positions_bohr]
        if self.level == "full":
            results = self._compute(positions, cells, True)
        else:
            plain = self.plain_cache.get(positions, cells, lambda: self._compute(positions, cells, False))
            if self.level == "plain":
                results = plain
            else:
                results = self._compute(positions, cells, True)
                for r, p in zip(results, plain):
                    for key in ("energy", "forces", "virial"):
                        r[key] = r[key] - p[key]
        return [(r["energy"] / HARTREE_EV, r["forces"] * (BOHR_A / HARTREE_EV),
                 r["virial"] / HARTREE_EV, self.extras(r)) for r in results]

    def extras(self, r) -> str:
        """Symmetry diagnostics as JSON, units in the key names."""
        out = {"energy_spread_eV": r["energy_spread"], "energy_std_eV": r["energy_std"],
               "net_torque_eV": r["net_torque"].tolist()}
        if "forces_rms_spread" in r:
            out["forces_rms_spread_eV_per_A"] = r["forces_rms_spread"]
        if self.rotation_energies:
            out["rotation_energies_eV"] = r["rotation_energies"].tolist()
        return json.dumps(out)


class PlainCache:
    """The plain model's results of the last positions, shared by the two levels of multiple
    time stepping (i-PI asks both at the same positions on a slow step); thread-safe."""

    def __init__(self):
        import threading
        self.lock = threading.Lock()
        self.key, self.results = None, None

    def get(self, positions, cells, evaluate):
        key = b"".join(np.ascontiguousarray(a).tobytes() for a in (*positions, *cells))
        with self.lock:
            if key != self.key:
                self.results, self.key = evaluate(), key
            return [dict(r) for r in self.results]


class Connection:
    def __init__(self, sock: socket.socket):
        self.sock = sock

    def recv(self, nbytes: int) -> bytes:
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            k = self.sock.recv_into(view[got:], nbytes - got)
            if k == 0:
                raise ServerGone("i-PI closed the connection")
            got += k
        return bytes(buf)

    def recv_array(self, count: int, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self.recv(count * dtype.itemsize), dtype=dtype)

    def send(self, *chunks) -> None:
        self.sock.sendall(b"".join(c if isinstance(c, bytes) else np.ascontiguousarray(c).tobytes()
                                   for c in chunks))


def serve(conn: Connection, evaluator: AtomicUnitsEvaluator, log=None) -> None:
    """The protocol loop; returns on EXIT, raises ServerGone / ProtocolError otherwise."""
    initialized, results, batch = False, None, 1
    while True:
        header = conn.recv(HEADER)
        if header == STATUS:
            conn.send(NEEDINIT if not initialized else HAVEDATA if results is not None else READY)
        elif header == INIT:
            _replica, length = conn.recv_array(2, np.int32)
            text = conn.recv(int(length)).decode("utf-8", errors="replace")
            for token in text.split(","):
                key, sep, value = token.partition(":")
                if sep and key.strip() == "batch_size":
                    batch = int(value)
            if batch < 1:
                raise ProtocolError(f"invalid batch_size {batch} in INIT")
            initialized = True
        elif header == POSDATA:
            if batch == 1:
                cell = conn.recv_array(18, np.float64)[:9]
                nat = int(conn.recv_array(1, np.int32)[0])
                cells, positions = [cell], [conn.recv_array(3 * nat, np.float64).reshape(nat, 3)]
            else:
                nat = int(conn.recv_array(1, np.int32)[0])
                blocks = conn.recv_array(18 * batch, np.float64).reshape(batch, 18)
                cells = [b[:9] for b in blocks]
                positions = conn.recv_array(batch * 3 * nat, np.float64).reshape(batch, nat, 3)
            results = evaluator.evaluate(cells, list(positions))
        elif header == GETFORCE:
            if results is None:
                raise ProtocolError("GETFORCE before any POSDATA")
            nat = len(evaluator.numbers)
            if batch == 1:
                energy, forces, virial, extras = results[0]
                data = extras.encode()
                conn.send(FORCEREADY, np.float64(energy), np.int32(nat), forces.astype(np.float64),
                          virial.astype(np.float64), np.int32(len(data)), data)
            else:
                chunks = [FORCEREADY, np.array([r[0] for r in results], np.float64), np.int32(nat),
                          np.array([r[1] for r in results], np.float64),
                          np.array([r[2] for r in results], np.float64)]
                for r in results:
                    data = r[3].encode()
                    chunks += [np.int32(len(data)), data]
                conn.send(*chunks)
            results = None
        elif header == EXIT:
            return
        else:
            raise ProtocolError(f"unexpected message header {header!r} from i-PI")


def connect(unix: str | None, inet: str | None, prefix: str, timeout: float,
            stale_after: float = 3.0) -> socket.socket:
    """Connects to i-PI, retrying until `timeout` seconds have passed.

    A unix socket file that refuses connections for `stale_after` seconds (at most `timeout`)
    is a stale file left by an i-PI that stopped or crashed: i-PI binds the file a moment
    before it listens, so a short refusal is retried, a persistent one is a ServerGone naming
    the file and what to do.
    """
    deadline = time.monotonic() + timeout
    refused_since = None  # unix: when the socket file started refusing connections
    while True:
        sock = None
        try:
            if unix is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(prefix + unix)
            else:
                host, _, port = inet.rpartition(":")
                if not host or not port.isdigit():
                    raise ValueError(f"--inet must be HOST:PORT, got '{inet}'")
                sock = socket.create_connection((host, int(port)), timeout=5)
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as error:  # no socket file yet, refused, timed out
            if sock is not None:
                sock.close()
            now = time.monotonic()
            path = prefix + unix if unix is not None else None
            if (path is not None and isinstance(error, ConnectionRefusedError)
                    and os.path.exists(path)):
                if refused_since is None:
                    refused_since = now
                if now - refused_since >= min(stale_after, timeout):
                    raise ServerGone(
                        f"the unix socket file {path} exists but nothing listens on it "
                        f"(connections refused for {now - refused_since:.1f} s): it was left "
                        f"by an i-PI that stopped or crashed, and a new i-PI cannot bind it. "
                        f"Remove it (rm {path}), then start i-PI again") from None
            else:
                refused_since = None
            if now > deadline:
                target = path if path is not None else inet
                raise ServerGone(f"could not connect to i-PI at {target} within {timeout:g} s "
                                 f"({error})") from None
            time.sleep(0.1)


def main(argv=None) -> int:
    from . import load_model
    from .runtime import add_option_arguments, options_from_arguments

    p = argparse.ArgumentParser(prog="symprobe-ipi", description=__doc__.split("\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="NAME", help="unix socket <prefix>NAME")
    where.add_argument("--inet", metavar="HOST:PORT", help="TCP socket")
    p.add_argument("--sockets-prefix", default="/tmp/ipi_", help="unix socket prefix (i-PI's default)")
    p.add_argument("--model", required=True, help="model file or bundled model name")
    p.add_argument("--structure", required=True,
                   help="structure file (any ASE format) giving the elements in i-PI's atom order")
    add_option_arguments(p)
    mts = p.add_mutually_exclusive_group()
    mts.add_argument("--mts-unix", metavar="NAME",
                     help="multiple time stepping: the main socket serves the plain model (i-PI's "
                          "fast level), this unix socket the rotation average minus the plain model "
                          "(the slow level); one model load")
    mts.add_argument("--mts-inet", metavar="HOST:PORT", help="the slow level's TCP socket")
    p.add_argument("--finite", action="store_true",
                   help="a finite system (a gas-phase molecule in i-PI's box): no periodic images, "
                        "so that its net torque is defined (and removed by --correction torque-free)")
    p.add_argument("--rotation-energies", action="store_true",
                   help="send the energy of every rotation in the extras")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds")
    args = p.parse_args(argv)

    def terminate(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    import ase.io
    try:
        atoms = ase.io.read(args.structure, index=0)
        model = load_model(args.model, **options_from_arguments(args))
        # everything that can be checked is checked before waiting for i-PI
        multiple = args.mts_unix is not None or args.mts_inet is not None
        cache = PlainCache()
        evaluators = [AtomicUnitsEvaluator(model, atoms.numbers, args.rotation_energies, args.finite,
                                           "plain" if multiple else "full", cache)]
        if multiple:
            evaluators.append(AtomicUnitsEvaluator(model, atoms.numbers, args.rotation_energies,
                                                   args.finite, "correction", cache))
        sockets = [connect(args.unix, args.inet, args.sockets_prefix, args.connect_timeout)]
        if multiple:
            sockets.append(connect(args.mts_unix, args.mts_inet, args.sockets_prefix, args.connect_timeout))
    except (ValueError, OSError, RuntimeError, ase.io.formats.UnknownFileTypeError) as error:
        print(f"symprobe-ipi: error: {error}", file=sys.stderr)
        return 2
    levels = (f", multiple time stepping: plain model on the first socket, ({model.rotations}) minus "
              f"plain on the second" if multiple else "")
    print(f"symprobe-ipi: connected ({model.rotations}), {len(atoms)} atoms"
          f"{', a finite system' if args.finite else ''}{levels}", flush=True)
    return serve_all(sockets, evaluators)


def serve_all(sockets, evaluators) -> int:
    """Serves each connection with its evaluator, one thread each when there are several;
    status 1 if any connection failed, else 0 once all received EXIT."""
    import threading
    statuses = [None] * len(sockets)

    def one(k):
        try:
            serve(Connection(sockets[k]), evaluators[k])
            statuses[k] = 0
        except (ServerGone, OSError) as error:  # OSError: the socket, closed or reset
            print(f"symprobe-ipi: error: i-PI is gone ({error})", file=sys.stderr)
            statuses[k] = 1
        except (ProtocolError, ValueError, RuntimeError) as error:
            print(f"symprobe-ipi: error: {error}", file=sys.stderr)
            statuses[k] = 1
        if statuses[k] != 0:
            # a failed level ends the run: the other waits for an i-PI that no longer steps
            for other in sockets:
                try:
                    other.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(1, len(sockets))]
    for t in threads:
        t.start()
    one(0)
    for t in threads:
        t.join()
    for sock in sockets:
        sock.close()
    status = max(s if s is not None else 1 for s in statuses)
    if status == 0:
        print("symprobe-ipi: EXIT received", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
