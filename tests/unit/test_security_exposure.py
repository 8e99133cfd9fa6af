"""The exposure arithmetic and labels (systemd 252's), and the checks judged on ``Facts``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from systemg.security.checks import CHECKS, Check
from systemg.security.exposure import Item, above, judge, label, score
from systemg.security.facts import Facts, Limits
from systemg.security.mounts import MountView, mount_view, parse_mountinfo
from systemg.security.syscalls import GROUPS

LOCKED = Facts(
    uid=33,
    user="www-data",
    cap_bnd=0,
    no_new_privs=True,
    unshared=frozenset({"net", "mnt", "pid", "user", "uts", "ipc"}),
    mounts=MountView(private_tmp=True, private_dev=True, protect_system="strict"),
    limits=Limits(memory_max=1 << 20, cpu_quota="50000 100000", tasks_max=10, nproc=10),
)


def by_field(items: tuple[Item, ...]) -> dict[str, Item]:
    return {i.check.json_field: i for i in items}


def test_the_table_is_systemd_252s_plus_five_of_systemgs_own() -> None:
    fields = [c.json_field for c in CHECKS]
    assert len(fields) == len(set(fields)) == 86
    assert sum(not c.systemd for c in CHECKS) == 5
    assert sum(c.weight for c in CHECKS if c.systemd) == 56460  # systemd 252: 81 items
    assert {c.basis for c in CHECKS} == {"observed", "filter", "systemg", "assumed"}


@pytest.mark.parametrize(
    ("tenths", "name"),
    [
        (100, "DANGEROUS"),
        (99, "UNSAFE"),
        (90, "UNSAFE"),
        (89, "EXPOSED"),
        (75, "EXPOSED"),
        (74, "MEDIUM"),
        (50, "MEDIUM"),
        (49, "OK"),
        (10, "OK"),
        (9, "SAFE"),
        (1, "SAFE"),
        (0, "PERFECT"),
    ],
)
def test_labels_are_systemds(tenths: int, name: str) -> None:
    assert label(tenths) == name


def test_formula_rounds_up_like_systemd() -> None:
    a = Check("A=", "A", 1000, 1, lambda f: (1, None), "observed")
    b = Check("B=", "B", 500, 10, lambda f: (3, None), "observed")
    na = Check("C=", "C", 9999, 1, lambda f: (None, None), "observed")
    items = judge(Facts(), (a, b, na))
    s = score(items)
    # (1000 + ceil(3*500/10)=150) * 100 / 1500 = 76.67 -> 77 tenths; n/a weighs nothing.
    assert (s.tenths, s.weight_sum, s.label) == (77, 1500, "EXPOSED")
    assert [s.item_tenths(i) for i in items] == [67, 10, None]


def test_bare_root_is_unsafe_above_9() -> None:
    s = score(judge(Facts()))
    assert s.value > 9.0
    assert s.label == "UNSAFE"


def test_locked_down_scores_lower_and_each_key_shows() -> None:
    items = by_field(judge(LOCKED))
    assert score(items.values()).tenths < score(judge(Facts())).tenths - 30
    for field in ("PrivateNetwork", "PrivateUsers", "PrivateTmp", "PrivateDevices"):
        assert items[field].good, field
    assert items["UserOrDynamicUser"].badness == 0
    assert items["ProtectSystem"].badness == 0
    assert items["CapabilityBoundingSet_CAP_SYS_ADMIN"].good
    assert items["MemoryMax"].good
    assert items["TasksMax"].good
    assert items["LimitNPROC"].good


def test_root_makes_groups_and_ipc_not_applicable() -> None:
    items = by_field(judge(Facts()))
    assert items["SupplementaryGroups"].badness is None
    assert items["RemoveIPC"].badness is None
    nobody = by_field(judge(replace(LOCKED, uid=65534, user="nobody", groups=frozenset({4}))))
    assert nobody["UserOrDynamicUser"].badness == 9
    assert nobody["SupplementaryGroups"].badness == 1


def test_a_seccomp_filter_counts_only_the_groups_it_excludes() -> None:
    none = by_field(judge(Facts()))
    assert none["SystemCallFilter_mount"].badness == 10
    allowed = frozenset().union(*GROUPS.values()) - GROUPS["@mount"]
    items = by_field(judge(Facts(seccomp_mode=2, syscalls_allowed=allowed)))
    assert items["SystemCallFilter_mount"].badness == 0
    assert items["SystemCallFilter_swap"].badness == 10
    assert "swapoff" in items["SystemCallFilter_swap"].description


def test_threshold_compares_tenths() -> None:
    s = score(judge(Facts()))
    assert above(s, s.value - 0.1)
    assert not above(s, s.value)


HOST = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
"""
BOXED = """\
100 99 254:0 / / ro,relatime - ext4 /dev/vda rw
101 100 0:50 / /proc rw,nosuid - proc proc rw,hidepid=invisible,subset=pid
102 100 0:51 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755
103 100 0:52 / /tmp rw,nosuid - tmpfs tmpfs rw,mode=1777
104 100 0:53 / /var/tmp rw,nosuid - tmpfs tmpfs rw,mode=1777
105 100 254:0 /usr /usr ro,relatime - ext4 /dev/vda rw
106 100 254:0 /etc /etc ro,relatime - ext4 /dev/vda rw
107 100 0:54 / /home ro,nosuid - tmpfs tmpfs ro,mode=000
108 101 0:21 /sys /proc/sys ro,relatime - proc proc rw
"""


def test_mountinfo_shows_private_tmp_dev_and_protections() -> None:
    host = parse_mountinfo(HOST)
    assert mount_view(host, host, {"/home": 0o40755}) == MountView()
    view = mount_view(parse_mountinfo(BOXED), host, {"/home": 0o40000, "/root": None})
    assert view.private_tmp
    assert view.private_dev
    assert view.protect_system == "strict"
    assert view.protect_home == "yes"
    assert view.proc_sys_read_only
    assert view.hidepid == "invisible"
    assert view.proc_subset_pid


def test_mountinfo_unescapes_and_skips_garbage() -> None:
    (m,) = parse_mountinfo("garbage\n1 0 0:1 / /a\\040b rw - tmpfs x rw\n")
    assert m.point == "/a b"
    assert m.fstype == "tmpfs"


def test_capability_checks_name_what_is_still_held() -> None:
    setuid_only = (1 << 7) | (1 << 10)
    items = by_field(judge(Facts(cap_bnd=setuid_only, cap_amb=1 << 10)))
    assert items["CapabilityBoundingSet_CAP_SET_UID_GID_PCAP"].description.endswith("(CAP_SETUID)")
    assert items["AmbientCapabilities"].description.endswith("(CAP_NET_BIND_SERVICE)")
    assert items["CapabilityBoundingSet_CAP_SYS_ADMIN"].good
