"""The node deployer's archive extraction (`datablox_deployer.safetar`): hostile archives,
refused with the home left as it was, and what a good archive becomes. `ci/python_tests.py` runs
this module under every Python the deployer supports that pyenv has."""

import gzip
import hashlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import unittest
from unittest import mock

from deployer_tree import REPO, DeployerCase, huge_header_archive, snapshot, tgz, tree_archive, zeros_archive

from datablox_deployer import DeployError, safetar


class HostileArchiveTest(DeployerCase):
    TOP = "evil__1_0"

    def hostile(self, members, expected_message, **sums):
        return self.hostile_bytes(tgz(members), expected_message, **sums)

    def hostile_bytes(self, archive, expected_message, **sums):
        self.tree.block("evil", "1.0", archive=archive)
        self.tree.sums_override.update(sums)
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        run = self.deploy("evil", "--max-bytes", "100000", "--max-members", "50", expect=1)
        self.assertIn("refusing sw_packages/evil__1_0.tgz", run.stderr)
        self.assertIn(expected_message, run.stderr)
        self.assert_unchanged_but_logged(before, " refused: refusing sw_packages/evil__1_0.tgz", expected_message)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "escaped")))
        return run

    def top(self):
        return ({"name": self.TOP, "type": tarfile.DIRTYPE, "mode": 0o755}, None)

    def test_traversal(self):
        self.hostile([self.top(), ({"name": self.TOP + "/../../escaped"}, b"x")], "member `evil__1_0/../../escaped`: a `..` component")

    def test_absolute_path(self):
        self.hostile([self.top(), ({"name": "/tmp/escaped"}, b"x")], "member `/tmp/escaped`: an absolute path")

    def test_escaping_symlink(self):
        self.hostile([self.top(), ({"name": self.TOP + "/link", "type": tarfile.SYMTYPE, "linkname": "../../escaped"}, None)],
                     "member `evil__1_0/link`: a symbolic link to `../../escaped`")

    def test_absolute_symlink(self):
        self.hostile([self.top(), ({"name": self.TOP + "/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)],
                     "a symbolic link to `/etc/passwd`")

    def test_escaping_hard_link(self):
        self.hostile([self.top(), ({"name": self.TOP + "/hard", "type": tarfile.LNKTYPE, "linkname": "etc/passwd"}, None)],
                     "member `evil__1_0/hard`: a hard link to `etc/passwd`")

    def test_device(self):
        self.hostile([self.top(), ({"name": self.TOP + "/dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)],
                     "member `evil__1_0/dev`: a device")

    def test_fifo(self):
        self.hostile([self.top(), ({"name": self.TOP + "/pipe", "type": tarfile.FIFOTYPE}, None)], "member `evil__1_0/pipe`: a FIFO")

    def test_wrong_top_directory(self):
        self.hostile([({"name": "other"}, b"x")], "member `other`: outside the archive's expected top directory `evil__1_0/`")

    def test_tampered_digest(self):
        self.hostile([self.top(), ({"name": self.TOP + "/__init__.py"}, b"")], "but SHA256SUMS says " + "0" * 64,
                     **{"evil__1_0.tgz": "0" * 64})

    def test_size_bomb(self):
        self.hostile([self.top(), ({"name": self.TOP + "/zeros"}, bytes(200000))], "member `evil__1_0/zeros`: more than 100000 bytes once decompressed")

    def test_member_count_bomb(self):
        members = [self.top()] + [({"name": "{}/f{}".format(self.TOP, i)}, b"") for i in range(60)]
        self.hostile(members, "more than 50 members")

    def test_member_under_a_symlink(self):
        self.hostile([self.top(), ({"name": self.TOP + "/link", "type": tarfile.SYMTYPE, "linkname": "sub"}, None),
                      ({"name": self.TOP + "/link/x"}, b"x")],
                     "member `evil__1_0/link/x`: it lies under `evil__1_0/link`, which is a symbolic link in the archive")

    def test_symlink_over_a_directory(self):
        self.hostile([self.top(), ({"name": self.TOP + "/sub/x"}, b"x"),
                      ({"name": self.TOP + "/sub", "type": tarfile.SYMTYPE, "linkname": "."}, None)],
                     "member `evil__1_0/sub`: the path is also a directory in the archive")

    def test_member_under_a_file(self):
        self.hostile([self.top(), ({"name": self.TOP + "/f"}, b"x"), ({"name": self.TOP + "/f/x"}, b"x")],
                     "member `evil__1_0/f/x`: it lies under `evil__1_0/f`, which is a file in the archive")

    def test_path_given_twice(self):
        self.hostile([self.top(), ({"name": self.TOP + "/f"}, b"x"), ({"name": self.TOP + "/f"}, b"y")],
                     "member `evil__1_0/f`: the path is given twice in the archive")

    def test_hard_link_to_a_symlink(self):
        self.hostile([self.top(), ({"name": self.TOP + "/link", "type": tarfile.SYMTYPE, "linkname": "x"}, None),
                      ({"name": self.TOP + "/hard", "type": tarfile.LNKTYPE, "linkname": self.TOP + "/link"}, None)],
                     "member `evil__1_0/hard`: a hard link to `evil__1_0/link`, which is not a regular file earlier")

    def test_hard_link_to_a_later_member(self):
        self.hostile([self.top(), ({"name": self.TOP + "/hard", "type": tarfile.LNKTYPE, "linkname": self.TOP + "/f"}, None),
                      ({"name": self.TOP + "/f"}, b"x")],
                     "member `evil__1_0/hard`: a hard link to `evil__1_0/f`, which is not a regular file earlier")

    def test_symlink_chain_leaving_through_another_link(self):
        # `s` points at the top directory (inside); `l` climbs from `s`'s target, so its path
        # looks inside lexically (evil__1_0/a/b) but really leads to the home.
        deep = self.TOP + "/a/b/c/d"
        self.hostile([self.top(), ({"name": deep, "type": tarfile.DIRTYPE, "mode": 0o755}, None),
                      ({"name": deep + "/s", "type": tarfile.SYMTYPE, "linkname": "../../../.."}, None),
                      ({"name": deep + "/l", "type": tarfile.SYMTYPE, "linkname": "s/../../.."}, None)],
                     "member `evil__1_0/a/b/c/d/l`: a symbolic link to `s/../../..`, which leaves `evil__1_0/` through other links")

    @unittest.skipUnless(shutil.which("tar"), "GNU tar writes the sparse members")
    def test_sparse_members(self):
        # GNU's old sparse header, and the pax format's (tarfile reads the map of either).
        for tar_format in ("gnu", "pax"):
            with self.subTest(tar_format):
                source = os.path.join(self.tmp, "sparse-" + tar_format)
                os.makedirs(os.path.join(source, self.TOP))
                with open(os.path.join(source, self.TOP, "holes"), "wb") as handle:
                    handle.seek(4 << 20)
                    handle.write(b"x")
                archive = subprocess.run(["tar", "--sparse", "--format=" + tar_format, "-czf", "-", "-C", source, self.TOP],
                                         stdout=subprocess.PIPE, check=True).stdout
                self.hostile_bytes(archive, "a sparse member")

    def test_gzip_bomb_refused_within_the_default_budget(self):
        # 72 MiB of zeros in 3 files, ~70 KiB on disk: the budget is max(64 MiB, 100 x that);
        # the file that would cross it is refused from its header, before it is written.
        self.tree.block("evil", "1.0", archive=zeros_archive(self.TOP, [24 << 20] * 3))
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        run = self.deploy("evil", expect=1)
        self.assertIn("member `evil__1_0/z2`: more than {} bytes once decompressed".format(64 << 20), run.stderr)
        self.assert_unchanged_but_logged(before, " refused: refusing sw_packages/evil__1_0.tgz")

    def refuse_huge_header(self, kind, what):
        """A GiB in one extended header (a few KiB on disk) is refused as its header is read: the
        deployer's peak RSS, measured by a parent that runs nothing else, stays under 100 MiB."""
        self.tree.block("evil", "1.0", archive=huge_header_archive(self.TOP, kind, 1 << 30))
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        measure = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
                   "sys.stderr.write('max_rss_kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                   "sys.exit(code)")
        run = self.deploy("evil", expect=1, wrapper=[sys.executable, "-c", measure])
        self.assertIn("refusing sw_packages/evil__1_0.tgz: {} of {} bytes (the limit is {})".format(what, 1 << 30, 1 << 20),
                      run.stderr)
        max_rss = int(run.stderr.rsplit("max_rss_kib=", 1)[1])
        self.assertLess(max_rss, 100 << 10, "peak RSS {} KiB".format(max_rss))
        self.assert_unchanged_but_logged(before, " refused: refusing sw_packages/evil__1_0.tgz")

    def test_a_gib_pax_header_is_refused_as_it_is_read(self):
        self.refuse_huge_header("pax", "a pax header")

    def test_a_gib_gnu_long_name_is_refused_as_it_is_read(self):
        self.refuse_huge_header("gnu", "a GNU long name")

    def negative_size_archive(self, pax):
        """`evil__1_0/f` with the size field `-1` (a valid checksum; tarfile parses it too), then
        a large member: read as "to the end", the rest of the stream would land in memory."""
        top = {"name": self.TOP, "type": tarfile.DIRTYPE, "mode": 0o755}
        if pax:
            top["pax_headers"] = {"comment": "tarfile reads this archive's headers"}
        members = [(top, None), ({"name": self.TOP + "/f"}, b""), ({"name": self.TOP + "/zeros"}, bytes(300000))]
        data = bytearray(gzip.decompress(tgz(members)))
        at = next(o for o in range(0, len(data), 512) if data[o:o + 100].rstrip(b"\0") == (self.TOP + "/f").encode())
        data[at + 124:at + 136] = b"-0000000001\0"
        data[at + 148:at + 156] = b" " * 8
        data[at + 148:at + 156] = b"%06o\0 " % sum(data[at:at + 512])
        return gzip.compress(bytes(data), mtime=0)

    def refuse_negative_size(self, pax):
        self.tree.block("evil", "1.0", archive=self.negative_size_archive(pax))
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        run = self.deploy("evil", "--max-bytes", "100000", "--max-members", "50", expect=1)
        self.assertIn("refusing sw_packages/evil__1_0.tgz: member `evil__1_0/f`: a negative size (-1)", run.stderr)
        self.assert_unchanged_but_logged(before, " refused: refusing sw_packages/evil__1_0.tgz")

    def test_negative_size_in_a_plain_header(self):
        self.refuse_negative_size(pax=False)

    def test_negative_size_read_by_tarfile(self):
        self.refuse_negative_size(pax=True)

    def test_not_a_gzip_file(self):
        # The digest is right: the bytes are not a gzipped tar.
        self.tree.block("evil", "1.0", archive=b"not a tar archive at all")
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        run = self.deploy("evil", expect=1)
        self.assertIn("not a readable gzipped tar archive", run.stderr)
        self.assert_unchanged_but_logged(before, " refused: refusing sw_packages/evil__1_0.tgz")

    def test_a_good_archive_passes_the_same_checks(self):
        self.tree.block("good", "1.0", archive=tree_archive("good__1_0", {"__init__.py": b"", "sub/inner.txt": b"x"}))
        self.tree.write()
        self.deploy("good", "--max-bytes", "100000", "--max-members", "50")
        self.assertTrue(os.path.isfile(os.path.join(self.home, "blox", "good__1_0", "sub", "inner.txt")))

    @staticmethod
    def equivalence_archive(top, tar_format):
        """Links inside the resource, a hard link, modes the `data` filter changes, mtimes, a ustar
        prefix or a long name (pax or GNU, by format) and a GNU `././@LongLink` member."""
        long_name = top + "/" + "d" * 120 + "/" + "f" * 90 + ".py"
        members = [({"name": top, "type": tarfile.DIRTYPE, "mode": 0o700, "mtime": 1000}, None),
                   ({"name": top + "/sub/", "type": tarfile.DIRTYPE, "mode": 0o755, "mtime": 2000}, None),
                   ({"name": top + "/sub/run.sh", "mode": 0o4777, "mtime": 3000}, b"#!/bin/sh\n"),
                   ({"name": top + "/sub/data.txt", "mode": 0o640, "mtime": 4000}, b"data\n" * 5000),
                   ({"name": top + "/sub/ro.txt", "mode": 0o444, "mtime": 4500}, b"ro\n"),
                   ({"name": top + "/sub/empty", "mode": 0o600, "mtime": 4600}, b""),
                   ({"name": top + "/rel", "type": tarfile.SYMTYPE, "linkname": "sub/data.txt"}, None),
                   ({"name": top + "/sub/up", "type": tarfile.SYMTYPE, "linkname": "../rel"}, None),
                   ({"name": top + "/hard.txt", "type": tarfile.LNKTYPE, "linkname": top + "/sub/data.txt", "mode": 0o640, "mtime": 4000}, None),
                   ({"name": long_name, "mtime": 5000}, b"long\n")]
        if tar_format != tarfile.USTAR_FORMAT:
            members.append(({"name": top + "/far", "type": tarfile.SYMTYPE, "linkname": "sub/" + "x" * 120}, None))
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tar_format) as tar:
            for fields, data in members:
                info = tarfile.TarInfo(fields.pop("name"))
                for field, value in fields.items():
                    setattr(info, field, value)
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
            end = tar.offset
        gnu = tarfile.TarInfo(top + "/" + "g" * 150)
        gnu.size, gnu.mtime = 3, 6000
        stream = raw.getvalue()
        stream = stream[:end] + gnu.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape") + b"gnu" + bytes(509) + stream[end:]
        return gzip.compress(stream, mtime=0), long_name

    def test_what_tarfiles_data_filter_extracts_the_deployer_extracts_alike(self):
        top = "good__1_0"
        cases = (("pax", tarfile.PAX_FORMAT, 0o022), ("gnu", tarfile.GNU_FORMAT, 0o022),
                 ("ustar", tarfile.USTAR_FORMAT, 0o022), ("gnu, umask 077", tarfile.GNU_FORMAT, 0o077))
        for name, tar_format, umask in cases:
            with self.subTest(name):
                archive, long_name = self.equivalence_archive(top, tar_format)
                shutil.rmtree(self.home, ignore_errors=True)
                self.tree.block("good", "1.0", archive=archive)
                self.tree.write()
                reference = os.path.join(self.tmp, "tar-" + name)
                os.makedirs(reference)
                saved = os.umask(umask)
                try:
                    self.deploy("good")
                    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                        tar.extractall(reference, filter="data")
                finally:
                    os.umask(saved)
                ours = snapshot(os.path.join(self.home, "blox", top))
                self.assertEqual(ours, snapshot(os.path.join(reference, top)))
                self.assertIn("g" * 150, ours)
                for path in ("", "sub", "sub/run.sh", "sub/data.txt", "hard.txt", long_name[len(top) + 1:], "g" * 150):
                    self.assertEqual(os.stat(os.path.join(self.home, "blox", top, path)).st_mtime,
                                     os.stat(os.path.join(reference, top, path)).st_mtime, path)
                self.assertEqual(ours["sub/run.sh"][2], 0o755)
                self.assertEqual(ours["sub/ro.txt"][2], 0o644)

    def test_two_gzip_members_are_refused(self):
        # `cat a.gz b.gz`: gzip reads it, tarfile's stream mode does not; `dist` writes one member.
        archive = tree_archive(self.TOP, {"a.py": b"a" * 3000})
        self.hostile_bytes(gzip.compress(gzip.decompress(archive)[:1000]) + gzip.compress(gzip.decompress(archive)[1000:]),
                           "not a readable gzipped tar archive")

class ExtractTest(unittest.TestCase):
    """`safetar.extract` called as the deployer calls it, on one archive file."""

    TOP = "t__1_0"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="deployer-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "t__1_0.tgz")
        self.destination = os.path.join(self.tmp, "dest")

    def write(self, archive):
        with open(self.path, "wb") as handle:
            handle.write(archive)
        return hashlib.sha256(archive).hexdigest()

    def extract(self, expected):
        return safetar.extract(self.path, "sw_packages/t__1_0.tgz", self.TOP, self.destination, expected=expected)

    def test_an_archive_rewritten_while_it_is_read_is_refused(self):
        # What is hashed is what is extracted: the file is rewritten (another archive, as an
        # attacker with write access to the dist would) after its first read.
        original = tree_archive(self.TOP, {"data.bin": os.urandom(256 << 10), "run.py": b"safe = 1\n"})
        rewritten = tree_archive(self.TOP, {"data.bin": os.urandom(255 << 10), "run.py": b"evil = 1\n"})
        expected = self.write(original)
        real_open = open

        class Rewritten(object):
            def __init__(self, handle):
                self.handle, self.reads = handle, 0

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def read(self, size=-1):
                data = self.handle.read(size)
                self.reads += 1
                if self.reads == 1:
                    with real_open(self.handle.name, "r+b") as other:
                        other.write(rewritten)
                        other.truncate()
                return data

        def hooked_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            return Rewritten(handle) if file == self.path else handle
        with mock.patch.object(safetar, "open", hooked_open, create=True):
            with self.assertRaises(safetar.Refused) as caught:
                self.extract(expected)
        self.assertIn("but SHA256SUMS says " + expected, str(caught.exception))
        self.assertFalse(os.path.lexists(self.destination))

    def test_an_interpreter_without_the_data_filter_is_refused(self):
        expected = self.write(tree_archive(self.TOP, {"a.py": b""}))
        with mock.patch.dict(tarfile.__dict__):
            del tarfile.data_filter
            with self.assertRaises(DeployError) as caught:
                self.extract(expected)
        self.assertIn("has no tarfile extraction filters (PEP 706)", str(caught.exception))
        self.assertIn(safetar.SUPPORTED, str(caught.exception))
        self.assertFalse(os.path.lexists(self.destination))

    def test_the_python3_driver_names_the_versions_the_deployer_supports(self):
        driver = os.path.join(REPO, "engage-extension", "drivers", "system_python_driver.py")
        with open(driver) as handle:
            self.assertIn('SUPPORTED = "{}"\n'.format(safetar.SUPPORTED), handle.read())

    def test_a_refusal_partway_still_hashes_every_byte_of_the_file(self):
        # 40 MiB of zeros, refused from its first file's header: the rest of the file is hashed
        # all the same, so a change past what tarfile read (the gzip trailer's last byte) is what
        # is reported.
        archive = zeros_archive(self.TOP, [8 << 20] * 5)
        expected = self.write(archive)
        for data, refusal in ((archive, "member `t__1_0/z0`: more than 1048576 bytes once decompressed"),
                              (archive[:-1] + bytes([archive[-1] ^ 1]), "but SHA256SUMS says " + expected)):
            self.write(data)
            with self.assertRaises(safetar.Refused) as caught:
                safetar.extract(self.path, "sw_packages/t__1_0.tgz", self.TOP, self.destination, max_bytes=1 << 20,
                                expected=expected)
            self.assertIn(refusal, str(caught.exception))
            self.assertFalse(os.path.lexists(self.destination))

    def test_a_full_disk_is_a_failure_naming_the_file_not_a_refusal_of_the_archive(self):
        # A file size limit makes the write fail as a full disk does (EFBIG instead of ENOSPC).
        expected = self.write(tree_archive(self.TOP, {"f.py": b"x" * 100}))
        saved_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50, hard))
        try:
            with self.assertRaises(DeployError) as caught:
                self.extract(expected)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, saved_signal)
        self.assertNotIsInstance(caught.exception, safetar.Refused)
        self.assertIn("sw_packages/t__1_0.tgz: cannot write {}: File too large".format(
            os.path.join(self.destination, "f.py")), str(caught.exception))
        self.assertFalse(os.path.lexists(self.destination))


if __name__ == "__main__":
    unittest.main()
