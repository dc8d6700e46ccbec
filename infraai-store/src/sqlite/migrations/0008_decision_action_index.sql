-- `/metrics` counts decisions by recommended action: from an index on the
-- action, not by parsing every decision's JSON at each scrape (about 150 ms
-- with 100,000 decisions).
ALTER TABLE decisions ADD COLUMN action_type TEXT
    GENERATED ALWAYS AS (json_extract(decision_json, '$.recommended_action.type')) VIRTUAL;
CREATE INDEX decisions_by_action ON decisions (action_type);
