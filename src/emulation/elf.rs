//! The smallest static programs that exit 0, one per architecture bud can test an emulator
//! for: an ELF header, one loadable segment, and the three or four instructions of
//! `exit(0)`. BuildKit ships compiled test binaries for the same purpose; these are written
//! out byte by byte instead, so that bud carries no foreign binaries.

/// Where the segment is loaded: above `vm.mmap_min_addr` on every architecture.
const BASE: u64 = 0x40_0000;

/// The exit-0 program for an OCI architecture (`arm` covers its variants: the code is ARMv5),
/// or `None` when bud has none for it.
pub(super) fn exit_zero(architecture: &str) -> Option<Vec<u8>> {
    Some(match architecture {
        // xor edi,edi; mov eax,60 (exit); syscall
        "amd64" => elf64(62, 0, &[0x31, 0xff, 0xb8, 60, 0, 0, 0, 0x0f, 0x05]),
        // xor ebx,ebx; mov eax,1 (exit); int 0x80
        "386" => elf32(3, 0, &[0x31, 0xdb, 0xb8, 1, 0, 0, 0, 0xcd, 0x80]),
        // mov x0,#0; mov x8,#93 (exit); svc #0
        "arm64" => elf64(183, 0, &words(&[0xd280_0000, 0xd280_0ba8, 0xd400_0001])),
        // mov r0,#0; mov r7,#1 (exit); svc #0 — EABI version 5 in the flags
        "arm" => elf32(
            40,
            0x0500_0000,
            &words(&[0xe3a0_0000, 0xe3a0_7001, 0xef00_0000]),
        ),
        // li a0,0; li a7,93 (exit); ecall
        "riscv64" => elf64(243, 0, &words(&[0x0000_0513, 0x05d0_0893, 0x0000_0073])),
        // li r0,1 (exit); li r3,0; sc — ELFv2 ABI in the flags
        "ppc64le" => elf64(21, 2, &words(&[0x3800_0001, 0x3860_0000, 0x4400_0002])),
        _ => return None,
    })
}

fn words(instructions: &[u32]) -> Vec<u8> {
    instructions.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A little-endian ELF64 executable: 64-byte header, one 56-byte program header, the code.
fn elf64(machine: u16, flags: u32, code: &[u8]) -> Vec<u8> {
    const HEADERS: u64 = 64 + 56;
    let size = HEADERS + code.len() as u64;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    out.extend_from_slice(&64u64.to_le_bytes()); // program headers
    out.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    out.extend_from_slice(&flags.to_le_bytes());
    for half in [64u16, 56, 1, 0, 0, 0] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    out.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    out.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    for word in [0, BASE, BASE, size, size, 0x1000] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(code);
    out
}

/// A little-endian ELF32 executable: 52-byte header, one 32-byte program header, the code.
fn elf32(machine: u16, flags: u32, code: &[u8]) -> Vec<u8> {
    const HEADERS: u32 = 52 + 32;
    let base = BASE as u32;
    let size = HEADERS + code.len() as u32;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for word in [base + HEADERS, 52, 0, flags] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    for half in [52u16, 32, 1, 0, 0, 0] {
        out.extend_from_slice(&half.to_le_bytes());
    }
    for word in [1, 0, base, base, size, size, 5, 0x1000] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(code);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_describe_the_file() {
        let arm64 = exit_zero("arm64").unwrap();
        assert_eq!(arm64.len(), 64 + 56 + 12);
        assert_eq!(u16::from_le_bytes([arm64[18], arm64[19]]), 183);
        assert_eq!(u16::from_le_bytes([arm64[52], arm64[53]]), 64);
        let arm = exit_zero("arm").unwrap();
        assert_eq!(arm.len(), 52 + 32 + 12);
        assert_eq!(arm[4], 1, "ELFCLASS32");
        assert_eq!(u16::from_le_bytes([arm[40], arm[41]]), 52);
        assert!(exit_zero("s390x").is_none());
    }

    /// The program for this machine's own architecture really runs and exits 0: the
    /// headers are right (the foreign ones share the writer).
    #[test]
    fn the_native_program_runs() {
        use std::os::unix::fs::PermissionsExt;
        let host = bud_frontend::convert::Platform::host();
        let program = exit_zero(&host.architecture).expect("a program for the host");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit0");
        std::fs::write(&path, program).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = std::process::Command::new(&path).status().unwrap();
        assert!(status.success(), "{status}");
    }
}
