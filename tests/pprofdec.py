"""A small, independent reader of gzipped pprof profiles (profile.proto), for the tests.

It decodes the protobuf wire format directly, so the tests check heapspy's output with code that
shares nothing with heapspy's encoder, and read the Go runtime's own profiles the same way.
"""
import gzip
import struct


def _varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += 7


def _fields(buf):
    """Yields (field number, wire type, value) of one message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wt == 5:
            v = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise ValueError("bad wire type %d" % wt)
        yield num, wt, v


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wt, v, signed=False):
    """A repeated integer field, packed or not."""
    if wt == 0:
        out = [v]
    else:
        out, i = [], 0
        while i < len(v):
            x, i = _varint(v, i)
            out.append(x)
    return [_signed(x) for x in out] if signed else out


class Profile:
    def __init__(self, data):
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        self.strings, self.sample_types, self.samples = [], [], []
        self.mappings, self.locations, self.functions = {}, {}, {}
        self.comments, self.period, self.period_type = [], 0, None
        self.time_nanos = self.duration_nanos = 0
        self.default_sample_type = 0
        raw_samples, raw_types, raw_locs, raw_funcs, raw_maps, comments = [], [], [], [], [], []
        period_type = None
        for num, wt, v in _fields(data):
            if num == 1:
                raw_types.append(v)
            elif num == 2:
                raw_samples.append(v)
            elif num == 3:
                raw_maps.append(v)
            elif num == 4:
                raw_locs.append(v)
            elif num == 5:
                raw_funcs.append(v)
            elif num == 6:
                self.strings.append(v.decode())
            elif num == 9:
                self.time_nanos = _signed(v)
            elif num == 10:
                self.duration_nanos = _signed(v)
            elif num == 11:
                period_type = v
            elif num == 12:
                self.period = _signed(v)
            elif num == 13:
                comments.extend(_ints(wt, v))
            elif num == 14:
                self.default_sample_type = v
        s = self.strings
        if not s or s[0] != "":
            raise ValueError("string_table[0] must be empty")
        self.sample_types = [self._valuetype(t) for t in raw_types]
        self.period_type = self._valuetype(period_type) if period_type is not None else None
        self.comments = [s[c] for c in comments]
        self.default_sample_type = s[self.default_sample_type]
        for m in raw_maps:
            d = {n: v for n, _, v in _fields(m)}
            self.mappings[d.get(1, 0)] = {"start": d.get(2, 0), "limit": d.get(3, 0),
                                          "file": s[d.get(5, 0)], "build_id": s[d.get(6, 0)]}
        for f in raw_funcs:
            d = {n: v for n, _, v in _fields(f)}
            self.functions[d.get(1, 0)] = {"name": s[d.get(2, 0)], "file": s[d.get(4, 0)]}
        for loc in raw_locs:
            lid, addr, mapping, lines = 0, 0, 0, []
            for n, _, v in _fields(loc):
                if n == 1:
                    lid = v
                elif n == 2:
                    mapping = v
                elif n == 3:
                    addr = v
                elif n == 4:
                    ld = {k: x for k, _, x in _fields(v)}
                    fn = self.functions[ld.get(1, 0)]
                    lines.append((fn["name"], fn["file"], ld.get(2, 0)))
            self.locations[lid] = {"address": addr, "mapping": mapping, "lines": lines}
        for smp in raw_samples:
            locs, values, labels = [], [], {}
            for n, wt, v in _fields(smp):
                if n == 1:
                    locs.extend(_ints(wt, v))
                elif n == 2:
                    values.extend(_ints(wt, v, signed=True))
                elif n == 3:
                    ld = {k: x for k, _, x in _fields(v)}
                    key = s[ld.get(1, 0)]
                    labels[key] = s[ld[2]] if ld.get(2) else _signed(ld.get(3, 0))
            self.samples.append({"locations": locs, "values": values, "labels": labels})

    def _valuetype(self, raw):
        d = {n: v for n, _, v in _fields(raw)}
        return (self.strings[d.get(1, 0)], self.strings[d.get(2, 0)])

    def index(self, sample_type):
        return [t for t, _ in self.sample_types].index(sample_type)

    def stack(self, sample):
        """Function names of a sample, leaf first, inlined frames expanded."""
        return [line[0] for lid in sample["locations"] for line in self.locations[lid]["lines"]]

    def by_site(self, sample_type, site_of):
        """Sums sample_type over samples, keyed by site_of(stack)."""
        i, out = self.index(sample_type), {}
        for smp in self.samples:
            key = site_of(self.stack(smp))
            out[key] = out.get(key, 0) + smp["values"][i]
        return out


def load(path):
    with open(path, "rb") as f:
        return Profile(f.read())
