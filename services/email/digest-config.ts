/** The digest side's environment variables. */
export const digestSpec = {};
