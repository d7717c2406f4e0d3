/** The sender side's environment variables. */
export const senderSpec = {};
