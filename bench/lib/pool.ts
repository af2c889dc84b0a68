// Runs many async tasks with a fixed number in flight.

/**
 * Calls task(0) .. task(total - 1), at most `concurrency` at a time, and resolves when all
 * have finished. The first task that throws rejects the whole run (tasks already started
 * still finish; no new ones start).
 */
export async function runPool(total: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < total) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}
