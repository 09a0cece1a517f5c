-- Issue 18 (migration 0013, its assigned number): an index for "search as you type" on
-- the portal's My contacts (sync/store/contact_search.py). An FTS5 table with the trigram
-- tokenizer finds any substring of three or more characters through the index, where LIKE '%...%' reads
-- every row (100k contacts: a few ms instead of ~0.5 s). One row per contact, rowid = contacts.id: `names` holds the names,
-- company and e-mail addresses, `numbers` every number's digits and its E.164 form without "+", space
-- separated (a query's digits never span two numbers). Triggers keep it in step with contacts and
-- contact_phones, whoever writes them.

CREATE VIRTUAL TABLE contact_search USING fts5(names, numbers, tokenize = 'trigram');

CREATE TRIGGER contact_search_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contact_search (rowid, names, numbers)
    VALUES (new.id, new.display_name || char(10) || new.given_name || char(10) || new.surname || char(10)
                    || new.company || char(10) || new.emails, '');
END;

CREATE TRIGGER contact_search_update AFTER UPDATE OF display_name, given_name, surname, company, emails
ON contacts BEGIN
    UPDATE contact_search
    SET names = new.display_name || char(10) || new.given_name || char(10) || new.surname || char(10)
                || new.company || char(10) || new.emails
    WHERE rowid = new.id;
END;

CREATE TRIGGER contact_search_delete AFTER DELETE ON contacts BEGIN
    DELETE FROM contact_search WHERE rowid = old.id;
END;

CREATE TRIGGER contact_search_phone_insert AFTER INSERT ON contact_phones BEGIN
    UPDATE contact_search
    SET numbers = (SELECT group_concat(p.digits || ' ' || coalesce(substr(p.e164, 2), ''), ' ')
                   FROM contact_phones p WHERE p.contact_id = new.contact_id)
    WHERE rowid = new.contact_id;
END;

CREATE TRIGGER contact_search_phone_delete AFTER DELETE ON contact_phones BEGIN
    UPDATE contact_search
    SET numbers = coalesce((SELECT group_concat(p.digits || ' ' || coalesce(substr(p.e164, 2), ''), ' ')
                            FROM contact_phones p WHERE p.contact_id = old.contact_id), '')
    WHERE rowid = old.contact_id;
END;

INSERT INTO contact_search (rowid, names, numbers)
SELECT c.id,
       c.display_name || char(10) || c.given_name || char(10) || c.surname || char(10) || c.company || char(10)
       || c.emails,
       coalesce((SELECT group_concat(p.digits || ' ' || coalesce(substr(p.e164, 2), ''), ' ')
                 FROM contact_phones p WHERE p.contact_id = c.id), '')
FROM contacts c;
