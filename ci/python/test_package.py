"""The .deb that ci/test builds with cargo-deb ($SQUALL_DEB) holds the four binaries, the systemd
units, the example configs as conffiles, the docs and the maintainer scripts."""

import os
import subprocess


def test_deb_contents():
    deb = os.environ.get("SQUALL_DEB")
    assert deb, "SQUALL_DEB is unset: run ci/test, which builds the package"
    contents = subprocess.run(["dpkg-deb", "--contents", deb], check=True, capture_output=True, text=True).stdout
    for path in [
        "./usr/bin/squalld",
        "./usr/bin/squall-lookupd",
        "./usr/bin/squall-to-file",
        "./usr/bin/squall-bench",
        "./usr/lib/systemd/system/squalld.service",
        "./usr/lib/systemd/system/squall-lookupd.service",
        "./etc/squall/squalld.conf",
        "./etc/squall/squall-lookupd.conf",
        "./usr/share/doc/squall/DEPLOY.md",
    ]:
        assert any(line.endswith(path) for line in contents.splitlines()), f"{path} missing:\n{contents}"
    info = subprocess.run(["dpkg-deb", "--info", deb], check=True, capture_output=True, text=True).stdout
    for script in ["postinst", "prerm", "postrm", "conffiles"]:
        assert script in info, f"{script} missing:\n{info}"
