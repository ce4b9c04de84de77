/* x87: filled in below */
