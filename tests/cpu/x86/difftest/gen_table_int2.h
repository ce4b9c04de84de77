/* int2: filled in below */
