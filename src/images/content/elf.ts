// ELF identification from a file's first bytes (the ELF header, System V gABI).

/** Bytes needed to read e_ident and e_machine. */
export const ELF_HEAD_BYTES = 20;

const EM_386 = 3;
const EM_486 = 6;
const EM_ARM = 40;

/** The 32-bit target a header names (x86 or ARM), else undefined (not ELF, 64-bit, other machine). */
export function elf32Machine(head: Buffer): 'i386' | 'arm' | undefined {
  if (head.length < ELF_HEAD_BYTES) return undefined;
  if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return undefined;
  if (head[4] !== 1) return undefined; // EI_CLASS: 1 = ELFCLASS32
  const machine = head[5] === 2 ? head.readUInt16BE(18) : head.readUInt16LE(18);
  if (machine === EM_386 || machine === EM_486) return 'i386';
  return machine === EM_ARM ? 'arm' : undefined;
}
