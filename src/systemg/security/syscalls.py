"""The syscall groups ``systemd-analyze security`` checks (``SystemCallFilter=~@group``).

Members as systemd 252's ``systemd-analyze syscall-filter @group`` prints them, nested groups
expanded. Data only: ``exposure`` asks whether any member is still allowed.
"""

from __future__ import annotations


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


GROUPS: dict[str, frozenset[str]] = {
    "@swap": _names(
        """
        swapoff swapon
        """
    ),
    "@obsolete": _names(
        """
        _sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty idle
        lock mpx prof profil putpmsg query_module security sgetmask ssetmask stime stty sysfs
        tuxcall ulimit uselib ustat vserver
        """
    ),
    "@clock": _names(
        """
        adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday
        """
    ),
    "@cpu-emulation": _names(
        """
        modify_ldt subpage_prot switch_endian vm86 vm86old
        """
    ),
    "@debug": _names(
        """
        lookup_dcookie perf_event_open pidfd_getfd ptrace rtas s390_runtime_instr
        sys_debug_setcontext
        """
    ),
    "@mount": _names(
        """
        chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree
        pivot_root umount umount2
        """
    ),
    "@module": _names(
        """
        delete_module finit_module init_module
        """
    ),
    "@raw-io": _names(
        """
        ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read
        s390_pci_mmio_write
        """
    ),
    "@reboot": _names(
        """
        kexec_file_load kexec_load reboot
        """
    ),
    "@privileged": _names(
        """
        _sysctl acct adjtimex bpf capset chown chown32 chroot clock_adjtime clock_adjtime64
        clock_settime clock_settime64 delete_module fanotify_init fanotify_mark fchown fchown32
        fchownat finit_module init_module ioperm iopl kexec_file_load kexec_load lchown lchown32
        nfsservctl open_by_handle_at pciconfig_iobase pciconfig_read pciconfig_write pivot_root
        quotactl quotactl_fd reboot s390_pci_mmio_read s390_pci_mmio_write setdomainname
        setfsuid setfsuid32 setgroups setgroups32 sethostname setresuid setresuid32 setreuid
        setreuid32 settimeofday setuid setuid32 swapoff swapon vhangup
        """
    ),
    "@resources": _names(
        """
        ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr
        sched_setparam sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority
        setrlimit
        """
    ),
}

ALL_SYSCALLS: frozenset[str] = frozenset().union(*GROUPS.values())
