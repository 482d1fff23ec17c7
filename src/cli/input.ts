// Reading a document (JSON or YAML) from a file or stdin, for the offline commands.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';

export class UsageError extends Error {
  override name = 'UsageError';
}

export async function readDocument(file: string, stdin: NodeJS.ReadableStream): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readAll(stdin) : await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const name = file === '-' ? 'standard input' : file;
  if (text.trim() === '') throw new UsageError(`${name} is empty`);
  try {
    return JSON.parse(text);
  } catch {
    try {
      return parseYaml(text);
    } catch (error) {
      // The yaml library's message ends with the offending line and a caret under the column.
      throw new UsageError(`${name} is neither JSON nor YAML: ${(error as Error).message.trimEnd()}`);
    }
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
