// Moved to src/sandbox/emulators so the local sandbox can run the same emulators the tests use.
export * from '../../src/sandbox/emulators/adaptive-card.ts';
