//! Reading the harness's own executables: whether one is statically linked,
//! where its sections lie, and its symbol table. Just enough of ELF (64-bit,
//! little-endian) for [`build`](crate::build) and [`layout`](crate::layout);
//! every offset is checked, so a truncated or foreign file reads as `None`.

use std::path::Path;

/// A section of an ELF file (`.text`, `.rodata`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its name, from the section-name string table.
    pub name: String,
    /// Where it is loaded (`sh_addr`); 0 when it is not loaded.
    pub address: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A function in an ELF file's symbol table (`STT_FUNC` or `STT_GNU_IFUNC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its symbol name, as the linker sees it (mangled).
    pub name: String,
    /// Its address.
    pub address: u64,
    /// Its size in bytes (0 when the symbol does not say).
    pub size: u64,
}

/// An ELF executable's sections and functions.
#[derive(Debug, Clone, Default)]
pub struct Elf {
    /// Every section, in the order of the section-header table.
    pub sections: Vec<Section>,
    /// Every defined function of the symbol table (`.symtab`); empty for a
    /// stripped file.
    pub functions: Vec<Function>,
    /// Whether it names a dynamic loader (a `PT_INTERP` program header).
    pub interpreter: bool,
}

impl Elf {
    /// Reads the file at `path`; `None` if it cannot be read as a 64-bit
    /// little-endian ELF file.
    pub fn read(path: &Path) -> Option<Self> {
        Self::parse(&std::fs::read(path).ok()?)
    }

    /// Parses an ELF file held in memory.
    pub fn parse(elf: &[u8]) -> Option<Self> {
        const PT_INTERP: u32 = 3;
        const SHT_SYMTAB: u32 = 2;
        const STT_FUNC: u8 = 2;
        const STT_GNU_IFUNC: u8 = 10;
        let bytes = |at: usize, n: usize| elf.get(at..at.checked_add(n)?);
        let u16_at = |at: usize| Some(u16::from_le_bytes(bytes(at, 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(bytes(at, 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_le_bytes(bytes(at, 8)?.try_into().ok()?));
        let usize_at = |at: usize| usize::try_from(u64_at(at)?).ok();
        let c_str = |at: usize| {
            let tail = elf.get(at..)?;
            let end = tail.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&tail[..end]).into_owned())
        };
        // the magic number, ELFCLASS64, ELFDATA2LSB
        if bytes(0, 6)? != b"\x7fELF\x02\x01" {
            return None;
        }

        // program headers: e_phoff, e_phentsize, e_phnum
        let (table, entry, count) = (usize_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
        let mut interpreter = false;
        for i in 0..usize::from(count) {
            let header = table.checked_add(i.checked_mul(usize::from(entry))?)?;
            interpreter |= u32_at(header)? == PT_INTERP;
        }

        // section headers: e_shoff, e_shentsize, e_shnum, e_shstrndx
        let (table, entry, count) = (usize_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?);
        let header = |i: usize| table.checked_add(i.checked_mul(usize::from(entry))?);
        // (sh_name, sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_entsize)
        let raw = |i: usize| -> Option<(u32, u32, u64, usize, u64, u32, u64)> {
            let h = header(i)?;
            Some((
                u32_at(h)?,
                u32_at(h.checked_add(4)?)?,
                u64_at(h.checked_add(0x10)?)?,
                usize_at(h.checked_add(0x18)?)?,
                u64_at(h.checked_add(0x20)?)?,
                u32_at(h.checked_add(0x28)?)?,
                u64_at(h.checked_add(0x38)?)?,
            ))
        };
        let names_at = raw(usize::from(u16_at(0x3e)?)).map(|s| s.3);
        let mut sections = Vec::new();
        let mut functions = Vec::new();
        for i in 0..usize::from(count) {
            let (name, kind, address, offset, size, link, entsize) = raw(i)?;
            let name = names_at
                .and_then(|at| c_str(at.checked_add(usize::try_from(name).ok()?)?))
                .unwrap_or_default();
            sections.push(Section {
                name,
                address,
                size,
            });
            if kind != SHT_SYMTAB || entsize < 24 {
                continue;
            }
            let strings = raw(usize::try_from(link).ok()?)?.3;
            let (entsize, size) = (usize::try_from(entsize).ok()?, usize::try_from(size).ok()?);
            for at in (offset..offset.checked_add(size)?).step_by(entsize) {
                let (name, info, shndx) = (
                    u32_at(at)?,
                    *elf.get(at.checked_add(4)?)?,
                    u16_at(at.checked_add(6)?)?,
                );
                let kind = info & 0xf;
                if shndx == 0 || (kind != STT_FUNC && kind != STT_GNU_IFUNC) {
                    continue;
                }
                functions.push(Function {
                    name: c_str(strings.checked_add(usize::try_from(name).ok()?)?)?,
                    address: u64_at(at.checked_add(8)?)?,
                    size: u64_at(at.checked_add(16)?)?,
                });
            }
        }
        Some(Self {
            sections,
            functions,
            interpreter,
        })
    }

    /// The section called `name`, if there is one.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Whether the ELF executable at `path` is statically linked: it has no
/// `PT_INTERP` program header naming a dynamic loader. `None` if it cannot
/// be read as a 64-bit little-endian ELF file.
pub fn statically_linked(path: &Path) -> Option<bool> {
    Elf::read(path).map(|elf| !elf.interpreter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_has_a_text_section_and_this_function() {
        let exe = std::env::current_exe().unwrap_or_default();
        let elf = Elf::read(&exe).expect("the test binary is an ELF file");
        let text = elf.section(".text").expect("a .text section");
        assert!(text.size > 0);
        let me = elf
            .functions
            .iter()
            .find(|f| {
                f.name
                    .contains("the_running_test_binary_has_a_text_section")
            })
            .expect("this test function is in the symbol table");
        assert!(me.address >= text.address && me.address < text.address + text.size);
        assert!(me.size > 0);
    }

    #[test]
    fn truncated_or_foreign_files_read_as_none() {
        let exe = std::fs::read(std::env::current_exe().unwrap_or_default()).unwrap_or_default();
        assert!(Elf::parse(&exe).is_some());
        for cut in [0, 5, 0x30, 0x3f, 200] {
            assert!(
                Elf::parse(&exe[..cut.min(exe.len())]).is_none(),
                "cut at {cut}"
            );
        }
        assert!(Elf::parse(b"#!/bin/sh\necho not elf\n").is_none());
    }
}
