import { closeBridges } from './sync-call';

/** jest.config.js runs this in every test file: what the file's helpers opened is closed when it ends. */
afterAll(closeBridges);
