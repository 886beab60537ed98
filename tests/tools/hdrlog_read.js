// Read an HdrHistogram interval log with the reference JavaScript reader
// (hdr-histogram-js) and print what it found as one JSON object: intervals,
// total count, and the values at a few percentiles (nanoseconds, each the
// highest value equivalent to its bucket, as HdrHistogram reports them).
// usage: node hdrlog_read.js NODE_MODULES_DIR FILE
'use strict';
const path = require('path');
const fs = require('fs');
const hdr = require(path.join(process.argv[2], 'hdr-histogram-js'));
const reader = new hdr.HistogramLogReader(fs.readFileSync(process.argv[3], 'utf8'));
const total = hdr.build({ numberOfSignificantValueDigits: 2, highestTrackableValue: 2 ** 44 - 1 });
let intervals = 0;
for (let h; (h = reader.nextIntervalHistogram()) !== null; intervals++) total.add(h);
const at = (p) => total.getValueAtPercentile(p);
console.log(JSON.stringify({ intervals, count: total.totalCount, p50: at(50), p90: at(90), p99: at(99) }));
