#!/usr/bin/env python3
"""
Writes the benchmark's POST bodies: valid interactions payloads (POST .../interactions, a create) of exactly
200 B, 1 KiB, 16 KiB and 1 MiB.

    python3 make_payloads.py OUTDIR        -> OUTDIR/post-200.json post-1k.json post-16k.json post-1m.json

Every value respects rules/interactions.json: strings within maxLength, integers, ISO 8601 date-times, object
types from the ORA_SVC_IM_REF_OBJECT_TYPE_CD lookup, no read-only or unknown fields. The large payloads get their
size from child collections (interactionReferences, InteractionParticipants, InteractionData), as a real
integration's would, not from one huge string. The last bytes are made up by a padding string in Description
(maxLength 1000). run.sh checks each file with `crmgate validate` before measuring.
"""
import json
import os
import sys

SIZES = [("200", 200), ("1k", 1024), ("16k", 16 * 1024), ("1m", 1024 * 1024)]
OBJECT_TYPES = ["ZMM_ACTIVITIES", "MOO_OPTY", "SVC_WORK_ORDERS", "SVC_SERVICE_REQUESTS", "MKL_LM_LEADS"]


def reference(i):
    return {"ObjectTypeCd": OBJECT_TYPES[i % len(OBJECT_TYPES)], "ObjectId": 300100000000000 + i}


def participant(i):
    return {"ContactPartyId": 100000000 + i, "ParticipantName": "Participant %d" % i,
            "Email": "participant%d@example.com" % i, "DurationMinutes": i % 90,
            "EndTime": "2024-05-01T11:%02d:00Z" % (i % 60)}


def data(i):
    return {"TokenId": 400 + i, "Value": "token value %d: customer asked about the order status" % i}


def base():
    return {"ChannelTypeCd": "ORA_SVC_WEB", "DirectionCd": "ORA_SVC_INBOUND", "AccountPartyId": 300100000123456,
            "StartTime": "2024-05-01T10:00:00Z", "Description": ""}


def encode(doc):
    return json.dumps(doc, separators=(",", ":")).encode()


def build(target):
    doc = base()
    if target >= 1024:
        doc.update({"ContactPartyId": 300100000654321, "StatusCd": "ORA_SVC_OPEN", "QueueId": 300100000000777,
                    "OwnerResourceId": 300100000000888, "EndTime": "2024-05-01T10:20:00Z",
                    "AgentHTTPSessionId": "session-0123456789abcdef", "TopLevelFlag": True,
                    "interactionReferences": [reference(i) for i in range(3)]})
    if target > 4096:
        refs, parts, datas = [], [], []
        doc.update({"interactionReferences": refs, "InteractionParticipants": parts, "InteractionData": datas})
        i = 0
        # grow by whole child items, in a fixed mix, until one more round would overshoot
        while True:
            step = [(refs, reference(i)), (parts, participant(i)), (datas, data(i))]
            grow = sum(len(encode(item)) + 1 for _, item in step)
            if len(encode(doc)) + grow > target - 200:
                break
            for lst, item in step:
                lst.append(item)
            i += 1
    pad = target - len(encode(doc))
    if pad < 0 or pad > 1000:
        raise SystemExit("make_payloads: cannot reach %d bytes (padding %d)" % (target, pad))
    doc["Description"] = ("Customer called about the delivery of order 42. " * 25)[:pad]
    body = encode(doc)
    assert len(body) == target, (len(body), target)
    return body


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_payloads.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, size in SIZES:
        with open(os.path.join(out, "post-%s.json" % name), "wb") as f:
            f.write(build(size))
        print("post-%s.json %d bytes" % (name, size))


if __name__ == "__main__":
    main()
