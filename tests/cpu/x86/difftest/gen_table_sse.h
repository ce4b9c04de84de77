/* sse: filled in below */
